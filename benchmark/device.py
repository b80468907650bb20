"""The torch device a ``--device`` option names: ``auto`` is CUDA when torch sees one, else the CPU."""

from __future__ import annotations


def resolve_device(requested: str) -> str:
    """``"auto"`` -> ``"cuda"`` if ``torch.cuda.is_available()`` else ``"cpu"``; any other name as given."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
