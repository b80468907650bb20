"""The torch device a ``--device`` option names, and the arithmetic a model runs in there.

``auto`` is CUDA when torch sees one, else the CPU. ``amp`` (on by default) means bf16 autocast
where the hardware multiplies bf16 natively: every CUDA device, and a CPU with Intel AMX
(``torch.cpu.get_capabilities()["amx_bf16"]``: a CMT training step 1.3-1.65x and a ResNet18-FPN
step 1.3-1.8x faster there, ``perf/bench_train.py --precision``, the spread the host's load). Any
other CPU runs in float32, where bf16 would be emulated (slower, not faster). Losses and VLFA's
depth test stay float32 either way.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache


def resolve_device(requested: str) -> str:
    """``"auto"`` -> ``"cuda"`` if ``torch.cuda.is_available()`` else ``"cpu"``; any other name as given."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=1)
def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX)."""
    import torch

    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


def compute_dtype(device, amp: bool) -> str:
    """``"bf16"`` when ``amp`` autocasts on ``device`` (a torch.device or its name), else ``"fp32"``."""
    import torch

    kind = torch.device(device).type
    return "bf16" if amp and (kind == "cuda" or (kind == "cpu" and cpu_has_bf16_matmul())) else "fp32"


def autocast(device, amp: bool = True):
    """The autocast context of ``compute_dtype(device, amp)``: bf16 or none."""
    import torch

    if compute_dtype(device, amp) == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def float32_outputs(out: dict) -> dict:
    """A model's outputs with every floating tensor in float32: the training loss is computed from these,
    not from the bf16 outputs of an autocast forward (from those, CMT did not fit 16 samples in 30
    steps on CPU; from these it does, as in float32: tests/test_compute_dtype.py)."""
    import torch

    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in out.items()}
