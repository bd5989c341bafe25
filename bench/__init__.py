"""Load benchmark of the streaming chat path against a local Gemini stand-in (`make bench`).

Not part of the test suite. See docs/benchmarks.md."""
