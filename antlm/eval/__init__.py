"""Evaluation: zero-shot minimal-pair scoring."""
