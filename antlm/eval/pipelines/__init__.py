"""The scoring pipelines antlm reproduces, one module each; `get(name)` returns one."""
from __future__ import annotations

from antlm.errors import UserError
from antlm.eval.pipelines import babylm2024, babylm2025, clean
from antlm.eval.pipelines.base import Pipeline, ScoringContext  # noqa: F401

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (babylm2024.PIPELINE, babylm2025.PIPELINE, clean.PIPELINE)}


def get(name: str) -> Pipeline:
    if name not in PIPELINES:
        raise UserError(f"unknown compat mode '{name}' ({', '.join(PIPELINES)})")
    return PIPELINES[name]
