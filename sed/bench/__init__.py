"""Benchmarks over recorded corpora: ``sed bench detect``, ``sed bench localize``."""
