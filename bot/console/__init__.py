"""The local channel: the `mlbot` command line."""
