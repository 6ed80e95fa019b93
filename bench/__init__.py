"""Benchmarks at 1M customers: run with `make bench` (never by pytest)."""
