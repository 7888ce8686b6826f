"""Datasets internals: generators, symmetries, features and CSV (public API in app.datasets)."""
