"""amp's arithmetic: bf16 autocast on CUDA and on CPUs with AMX, float32 elsewhere; under CPU
autocast CMT computes in bf16, stays close to its float32 outputs, and still fits 16 samples."""

from __future__ import annotations

import pytest
import torch
from test_models import fake_batch

from brokenchairs.benchmark.device import autocast, compute_dtype, cpu_has_bf16_matmul, float32_outputs
from brokenchairs.models import build_model

NO_AMX = "this CPU has no AMX (torch.cpu.get_capabilities()['amx_bf16']): amp runs in float32 here"


def test_amp_off_is_float32_on_every_device_and_on_is_bf16_on_cuda():
    for device in ("cpu", "cuda", torch.device("cpu")):
        assert compute_dtype(device, False) == "fp32"
        assert isinstance(autocast(device, False), type(autocast("cpu", False)))
    assert compute_dtype("cuda", True) == compute_dtype(torch.device("cuda:0"), True) == "bf16"
    assert compute_dtype("cpu", True) == ("bf16" if torch.cpu.get_capabilities().get("amx_bf16") else "fp32")


@pytest.mark.skipif(not cpu_has_bf16_matmul(), reason=NO_AMX)
def test_cpu_autocast_runs_cmt_in_bf16_close_to_float32():
    torch.manual_seed(0)
    model = build_model("cmt").eval()
    batch = fake_batch(B=4, views=2, seed=1)
    seen = []
    model.head[0].register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    with torch.no_grad():
        full = model(batch)["logits"]
        with autocast("cpu", True):
            half = model(batch)["logits"]
    assert seen == [torch.float32, torch.bfloat16]  # the same layer, once in each arithmetic
    assert half.dtype == torch.bfloat16 and not torch.equal(half.float(), full)
    assert torch.allclose(torch.sigmoid(half.float()), torch.sigmoid(full), atol=0.02)


@pytest.mark.skipif(not cpu_has_bf16_matmul(), reason=NO_AMX)
def test_cmt_overfits_16_samples_under_cpu_autocast():
    torch.manual_seed(0)
    batch = fake_batch(B=16, views=2, seed=3, valid_frac=1.0)
    batch["label"] = torch.tensor([0, 1] * 8)[torch.randperm(16, generator=torch.Generator().manual_seed(4))]
    model = build_model("cmt")
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    for _ in range(30):  # as benchmark.train steps: the forward under autocast, the loss in float32
        with autocast("cpu", True):
            loss, _ = model.loss(batch, float32_outputs(model(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = ((model(batch)["logits"] > 0).long() == batch["label"]).float().mean().item()
    assert acc >= 0.95
