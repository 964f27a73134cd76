"""Benchmarks, run by `make bench`; they report figures, never pass or fail on timings."""
