"""Same config, same bytes, busy machine or not: SIGKILL-and-rerun trials of a small `generate`
while another process keeps a core busy, each compared with a clean run image by image.

    python perf/kill_rerun_under_load.py                 # 12 trials of the issue's config (~1-2 h on 2 cores)
    python perf/kill_rerun_under_load.py --trials 3 --shapes 3

Per trial: a busy loop (`while True: pass`, one core) runs throughout; `generate` starts and is
killed with SIGKILL (its whole process group) at a random moment -- once a random number of its
shards are complete (none: during start-up), plus up to 3 s -- then re-run to completion; every array of every sample (image, masks, depth, cameras, box) is compared
with the clean run's. Prints one line per trial and the count of identical trials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

KEYS = ("image", "mask_new", "mask_old", "object_mask", "depth", "K", "world_to_cam", "bbox")


def _cmd(out: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "brokenchairs", "generate", "--out", str(out), "--num-shapes", str(args.shapes),
            "--anomaly", "all", "--resolution", str(args.resolution), "--samples", str(args.samples), "--seed",
            str(args.seed), "--shard-size", "4", "--workers", "2"]


def samples(root: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in json.loads((root / "dataset.json").read_text())["queries"]["shards"]:
        with h5py.File(root / "shards" / name) as f:
            for i, sid in enumerate(f["sample_id"][()]):
                out[sid.decode()] = {k: f[k][i] for k in KEYS}
    return out


def compare(ref: dict, got: dict) -> tuple[int, list[str]]:
    """(images differing, notes) between two datasets' samples."""
    if set(ref) != set(got):
        return len(set(ref) ^ set(got)), [f"sample ids differ: {sorted(set(ref) ^ set(got))[:3]}"]
    bad, notes = 0, []
    for sid in sorted(ref):
        diff = [k for k in KEYS if not np.array_equal(ref[sid][k], got[sid][k], equal_nan=True)]
        if diff:
            bad += 1
            d = np.abs(ref[sid]["image"].astype(int) - got[sid]["image"].astype(int))
            notes.append(f"{sid}: {','.join(diff)} (image: max {d.max()} on {int((d.max(-1) > 0).sum())} px)")
    return bad, notes


def complete(out: Path) -> int:
    return len(list((out / "shards").glob("queries-*.h5"))) if (out / "shards").is_dir() else 0


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for sid, arrays in sorted(samples(root).items()):
        h.update(sid.encode())
        for k in KEYS:
            h.update(arrays[k].tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--shapes", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--rng", type=int, default=0, help="Seed of the kill moments.")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the runs [default: a temporary one].")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-rerun-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.rng)

    ref = work / "clean"
    shutil.rmtree(ref, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(_cmd(ref, args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clean_s = time.perf_counter() - t0
    reference = samples(ref)
    print(f"clean run: {len(reference)} queries in {clean_s:.0f} s, digest {digest(ref)}", flush=True)

    identical = 0
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        total = len(json.loads((ref / "dataset.json").read_text())["queries"]["shards"])
        for trial in range(args.trials):
            out = work / f"trial-{trial:02d}"
            killed = False
            while not killed:  # a run that finishes before its kill moment is no trial: draw again
                shutil.rmtree(out, ignore_errors=True)
                # the moment: a random number of complete shards (0: during start-up), then up to 3 s more
                after, delay = rng.randrange(0, total - 1), rng.uniform(0, 3)
                proc = subprocess.Popen(_cmd(out, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
                while proc.poll() is None and complete(out) < after:
                    time.sleep(0.02)
                time.sleep(delay)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                proc.wait()
            shards = complete(out)
            subprocess.run(_cmd(out, args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            bad, notes = compare(reference, samples(out))
            identical += bad == 0
            print(f"trial {trial + 1:2d}: killed {delay:.1f} s after {after} of {total} shards were complete "
                  f"({shards} at the kill); rerun: {bad} of {len(reference)} images differ"
                  + "".join(f"\n    {n}" for n in notes[:5]), flush=True)
    finally:
        busy.kill()
        busy.wait()
    print(f"{identical} of {args.trials} trials identical to the clean run, every array of every sample "
          f"(another process kept a core busy throughout; runs in {work})")


if __name__ == "__main__":
    main()
