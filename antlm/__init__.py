"""antlm: data-efficient pretraining of models that are both causal and masked (AntLM)."""
from __future__ import annotations

__version__ = "0.2.0.dev0"

# Before anything below can load torch: OpenMP reads its wait settings once, at load (antlm/threads.py).
from antlm.threads import apply_wait_policy as _apply_wait_policy  # noqa: E402

_apply_wait_policy()


def load_model(path, device="cpu"):
    """`model, tokenizer = load_model(run_dir_or_final)`; see antlm.model_io.load_model."""
    from antlm.model_io import load_model as _load

    return _load(path, device)


__all__ = ["load_model", "__version__"]
