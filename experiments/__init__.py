"""Experiment recipes (not part of the antlm package): run them as `python -m experiments.<study>.run`
from the repository root."""
