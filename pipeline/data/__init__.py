"""Data access: the input contract and its checks, reading sources and publishing outputs atomically."""
