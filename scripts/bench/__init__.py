"""Benchmarks: each writes artifacts/bench/<name>.json and prints its figures."""
