"""Benchmarks at national scale (issue 8). Not part of the installed package.

``python -m benchmarks.run --db sqlite|postgres|both`` generates (or reuses) a synthetic
national store and prints the timings; see benchmarks/README.md.
"""
