"""Reference peers of the benchmark (see docs/benchmarks.md): small, same events, same payloads."""
