"""Benchmarks (not part of the antlm package): `python benchmarks/NAME.py` with antlm installed, or
`python -m benchmarks.NAME` from the repository root (zeroshot2025 reuses pll_vs_minicons this way)."""
