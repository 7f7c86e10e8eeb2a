"""Benchmark scripts for sketch2anime (run them as ``python benchmarks/<name>.py``; see README.md).

These are measurement scripts, not tests: each prints a Markdown table and rewrites its own
section of ``docs/benchmarks.md``.
"""
