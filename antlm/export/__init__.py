"""Exporters from antlm's `final/` layout to other ecosystems (so far: Hugging Face transformers)."""
from __future__ import annotations


def export_hf(model_path, out_dir, force=False):
    """See antlm.export.hf.export_hf; imported lazily so `import antlm.export` stays cheap."""
    from antlm.export.hf import export_hf as _export

    return _export(model_path, out_dir, force=force)


__all__ = ["export_hf"]
