"""Benchmarks of AstraGo's pure parts (run as `python -m bench.<name>` from the repository root)."""
