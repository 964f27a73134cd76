"""Developer tools for mlbot: real sample data for tests, benchmarks and the demo (not shipped)."""
