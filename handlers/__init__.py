"""Channel-agnostic use cases: a Command in, a Reply out, dependencies passed in."""
