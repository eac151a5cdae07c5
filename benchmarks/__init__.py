"""Kernel micro-benchmarks: ``python -m benchmarks <name> [--device cpu|cuda] ...``."""
