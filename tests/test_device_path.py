"""The device fast path: the token store kept on the accelerator, and the GPU run itself (skipped
without CUDA). On CPU, a store held as a tensor must give bitwise the same run as the host store."""
import json

import pytest
import torch
from safetensors.torch import load_file

from antlm.config import build_config
from antlm.train.loop import train
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731


def _weights(out):
    return load_file(str(out / "final" / "model.safetensors"))


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_tensor_store_equals_host_store(text_corpus, tmp_path, backbone):
    host, tensor = tmp_path / "host", tmp_path / "tensor"
    train(build_config(None, tiny_overrides(text_corpus, **{"model.backbone": backbone})), host, log=QUIET)
    messages = []
    train(build_config(None, tiny_overrides(text_corpus, **{"model.backbone": backbone, "data.store_on_device": "true"})),
          tensor, log=messages.append)
    assert any("token store kept on cpu" in m for m in messages)
    a, b = _weights(host), _weights(tensor)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CI machine has none)")
@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_gpu_run_with_compile_bf16_and_device_store(text_corpus, tmp_path, backbone):
    messages = []
    out = tmp_path / "gpu"
    overrides = tiny_overrides(text_corpus, **{"model.backbone": backbone, "train.device": "cuda", "train.compile": "true"})
    result = train(build_config(None, overrides), out, log=messages.append)
    assert result["finished"] and any("token store kept on cuda" in m for m in messages)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("split") == "train"]
    assert all(l == l for l in losses) and losses[-1] < losses[0]
    # Resume on the GPU continues the same run (CUDA kernels with atomics, e.g. embedding
    # backward, make bitwise equality too strong a claim here; CPU runs assert it).
    resumed = tmp_path / "resumed"
    train(build_config(None, overrides + ["train.max_steps=12"]), resumed, log=QUIET)
    train(build_config(None, overrides), resumed, resume=True, log=QUIET)
    a, b = _weights(out), _weights(resumed)
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-2, atol=1e-3) for k in a)
