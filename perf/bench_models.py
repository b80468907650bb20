"""Model figures: TKCA by a fused attention mask vs by gathered keys (time, peak memory), parameter
counts beside the released model's, and forward+backward per sample.

Usage: python perf/bench_models.py [--device cpu|cuda] [--batch 8] [--repeats 3]
TKCA at the paper's test setting: N = 20 views x 32x32 patches (20480 keys), 1025 query tokens
([tok] + 32x32), k = 100, 8 heads of 64 (the released width). Each measurement runs in a fresh
process so its peak resident memory (CPU) or peak allocated memory (CUDA) is its own. Then
forward+backward time per sample at 256x256 with N_train = 10 views for `cmt` and `resnet18-fpn`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

# Trainable parameters of the released CMT (github.com/VICO-UoE/Looking3D, train.py build_network:
# VLFA_NetworkCNN(128) + VLFA_Projector(128, 1024, 256) + CGA_decoder), counted layer by layer from
# its source: see docs/faithfulness.md.
RELEASED_CMT_PARAMS = 30_776_389


def tkca_once(kind: str, device: str, batch: int, repeats: int) -> dict:
    from brokenchairs.models.tkca import cross_attention, gather_attention

    torch.manual_seed(0)
    heads, dh, nq, nv, k = 8, 64, 1024, 20 * 32 * 32, 100
    q = torch.randn(batch, heads, 1 + nq, dh, device=device)
    kt = torch.randn(batch, nv, heads * dh, device=device)
    vt = torch.randn(batch, nv, heads * dh, device=device)
    idx = torch.randint(nv, (batch, nq, k), device=device)
    split = lambda t: t.unflatten(-1, (heads, dh)).transpose(1, 2)  # noqa: E731
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            if kind == "mask":
                cross_attention(q, kt, vt, idx)
            else:
                gather_attention(q[:, :, 1:], split(kt), split(vt), idx)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20 if device == "cuda" else \
        (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return {"kind": kind, "seconds": statistics.median(times), "peak_mib": peak}


def train_step_once(name: str, device: str, batch: int, repeats: int) -> dict:
    from brokenchairs.models import build_model, parameter_count

    torch.manual_seed(0)
    H, N, h = 256, 10, 32
    b = {"query": torch.rand(batch, 3, H, H) * 2 - 1, "views": torch.rand(batch, N, 3, H, H) * 2 - 1,
         "patch_xyz": torch.rand(batch, N, h, h, 3), "patch_valid": torch.rand(batch, N, h, h) < 0.3,
         "label": torch.arange(batch) % 2}
    b = {k: v.to(device) for k, v in b.items()}
    model = build_model(name).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-5)
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        loss, _ = model.loss(b, model(b))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return {"model": name, "s_per_sample": statistics.median(times) / batch, "params": parameter_count(model),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        what, name = args.one
        fn = tkca_once if what == "tkca" else train_step_once
        print(json.dumps(fn(name, args.device, args.batch if what == "tkca" else 2, args.repeats)))
        return

    def run(what, name):
        p = subprocess.run([sys.executable, __file__, "--one", what, name, "--device", args.device, "--batch",
                            str(args.batch), "--repeats", str(args.repeats)], capture_output=True, text=True)
        if p.returncode:
            return {"error": (p.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]}
        return json.loads(p.stdout.strip().splitlines()[-1])

    print(f"TKCA, {args.device}: batch {args.batch}, 8 heads of 64, 1025 queries x 20480 keys, k = 100 "
          f"(median of {args.repeats})")
    res = {k: run("tkca", k) for k in ("mask", "gather")}
    for k, r in res.items():
        print(f"  {k:<7} " + (f"{r['seconds']:.3f} s   peak {r['peak_mib']:.0f} MiB" if "error" not in r else r["error"]))
    if all("error" not in r for r in res.values()):
        print(f"  mask vs gather: {res['gather']['seconds'] / res['mask']['seconds']:.1f}x faster, "
              f"{res['gather']['peak_mib'] / max(res['mask']['peak_mib'], 1):.1f}x less memory")
    from brokenchairs.models import MODEL_NAMES, build_model, parameter_count

    print("parameters (trainable; the EMA key copy is not): " + ", ".join(
        f"{n} {parameter_count(build_model(n)) / 1e6:.2f} M" for n in MODEL_NAMES))
    print(f"  cmt with the box head {parameter_count(build_model('cmt', box_head=True)) / 1e6:.2f} M; the released "
          f"CMT-final (encoder + projector + CGA_decoder with its 3-layer box MLP): {RELEASED_CMT_PARAMS / 1e6:.2f} M")
    print(f"forward+backward, {args.device}, 256x256, N = 10 views, batch 2 (median of {args.repeats}):")
    for name in ("cmt", "resnet18-fpn"):
        r = run("train", name)
        print(f"  {name:<13} " + (f"{r['s_per_sample']:.2f} s/sample  {r['params'] / 1e6:.1f} M params  peak RSS "
                                  f"{r['peak_mib']:.0f} MiB" if "error" not in r else r["error"]))


if __name__ == "__main__":
    main()
