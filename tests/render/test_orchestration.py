"""Execution at any scale gives one dataset: 2 workers, job arrays (merged or in one shared
folder; six members at once, half of them in PID namespaces of their own as if on other hosts),
Ray with 2 workers, and runs killed with SIGKILL at several points then re-run all give the same
sample ids and the same pixels. Plus validate and stats on the result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.shared_folder import Owner, parse_tmp

pytestmark = pytest.mark.blender
ARGS = ["--balance", "every-shape", "--num-shapes", "2", "--resolution", "32", "--samples", "1", "--views-per-variant", "2", "--seed", "9",
        "--shard-size", "4"]


def _cli(*args, code=0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == code, res.output + repr(res.exception)
    return res


def fingerprint(root: Path) -> dict:
    """sample id -> digest of every array of the sample (pixels, masks, depth, cameras, box)."""
    out = {}
    meta = json.loads((root / "dataset.json").read_text())
    for name in meta["queries"]["shards"]:
        with h5py.File(root / "shards" / name) as f:
            for i, sid in enumerate(f["sample_id"][()]):
                h = hashlib.sha256()
                for key in ("image", "mask_new", "mask_old", "object_mask", "depth", "K", "world_to_cam", "bbox"):
                    h.update(f[key][i].tobytes())
                out[sid.decode()] = h.hexdigest()
    return out


def manifest_ids(root: Path) -> list[str]:
    return [json.loads(x)["sample_id"] for x in (root / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("orch")
    _cli("generate", "--out", root / "ref", *ARGS, "--workers", "2")
    return root, fingerprint(root / "ref"), manifest_ids(root / "ref")


def test_one_worker_gives_the_same_dataset_as_two(reference, tmp_path):
    _, prints, ids = reference
    _cli("generate", "--out", tmp_path / "one", *ARGS, "--workers", "1")
    assert fingerprint(tmp_path / "one") == prints and manifest_ids(tmp_path / "one") == ids
    assert len(ids) > 8 and len(json.loads((tmp_path / "one" / "dataset.json").read_text())["queries"]["shards"]) > 2


def test_job_array_members_merged_or_sharing_a_folder_equal_one_run(reference, tmp_path):
    _, prints, ids = reference
    for i in range(2):
        _cli("generate", "--out", tmp_path / f"part{i}", *ARGS, "--workers", "1", "--num-shards", 2, "--shard-index", i)
        _cli("render-views", "--out", tmp_path / f"part{i}", "--resolution", 32, "--views", 4, "--shard-size", 1,
             "--workers", 1, "--num-shards", 2, "--shard-index", i)
        assert not (tmp_path / f"part{i}" / "manifest.jsonl").exists()  # half a dataset has no manifest
    out = _cli("merge", tmp_path / "part0", tmp_path / "part1", "--out", tmp_path / "merged").output
    assert "0 missing" in out
    assert fingerprint(tmp_path / "merged") == prints and manifest_ids(tmp_path / "merged") == ids
    _cli("validate", tmp_path / "merged")
    # all members pointed at one folder: the last to finish writes the manifest
    for i in (1, 0):
        _cli("generate", "--out", tmp_path / "shared", *ARGS, "--workers", "1", "--num-shards", 2, "--shard-index", i)
    assert fingerprint(tmp_path / "shared") == prints and manifest_ids(tmp_path / "shared") == ids
    # a merge of one half only says what is missing and fails
    res = _cli("merge", tmp_path / "part0", "--out", tmp_path / "half", code=1)
    assert "missing" in res.output


def test_ray_executor_with_two_workers_gives_the_same_dataset(reference, tmp_path):
    pytest.importorskip("ray")
    _, prints, ids = reference
    _cli("generate", "--out", tmp_path / "ray", *ARGS, "--workers", "2", "--executor", "ray")
    assert fingerprint(tmp_path / "ray") == prints and manifest_ids(tmp_path / "ray") == ids


# heavier renders for the kill test, so that every kill point lands while the run is still going
KILL_ARGS = ["--balance", "every-shape", "--num-shapes", "2", "--resolution", "64", "--samples", "4", "--views-per-variant", "2", "--seed", "9",
             "--shard-size", "4"]


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill") / "ref"
    _cli("generate", "--out", root, *KILL_ARGS, "--workers", "2")
    return root, fingerprint(root), manifest_ids(root)


def _run_until(out: Path, condition, timeout=300) -> int:
    """Start a real `brokenchairs generate`, SIGKILL its whole process group once condition(out) holds;
    returns the number of complete shards at that moment."""
    cmd = [sys.executable, "-m", "brokenchairs", "generate", "--out", str(out), *KILL_ARGS, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:
        while proc.poll() is None and time.time() - t0 < timeout:
            if condition(out):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return _complete_shards(out)


def _complete_shards(out: Path) -> int:
    return len(list((out / "shards").glob("queries-*.h5"))) if (out / "shards").is_dir() else 0


@pytest.mark.parametrize("point", ["startup", "one_shard", "half_shards", "most_shards"])
def test_kill_9_then_rerun_equals_an_uninterrupted_run(kill_reference, tmp_path, point):
    ref, prints, ids = kill_reference
    total = len(json.loads((ref / "dataset.json").read_text())["queries"]["shards"])
    conditions = {
        "startup": lambda out: (out / "dataset.json").exists(),
        "one_shard": lambda out: _complete_shards(out) >= 1,
        "half_shards": lambda out: _complete_shards(out) >= total // 2,
        "most_shards": lambda out: _complete_shards(out) >= total - 2,  # not - 1: both workers may finish within a poll
    }
    out = tmp_path / "killed"
    done = _run_until(out, conditions[point])
    assert done < total and not (out / "manifest.jsonl").exists()  # the kill interrupted the run
    _cli("generate", "--out", out, *KILL_ARGS, "--workers", "2")
    assert fingerprint(out) == prints and manifest_ids(out) == ids
    assert not list((out / "shards").glob("*.tmp-*"))


def test_rerun_redoes_truncated_shards_and_drops_dead_temporaries(kill_reference, tmp_path):
    ref, prints, ids = kill_reference
    out = tmp_path / "ds"
    shutil.copytree(ref, out)
    shards = sorted((out / "shards").glob("queries-*.h5"))
    shards[0].write_bytes(shards[0].read_bytes()[:1000])  # torn by a crash of the file system
    shards[1].unlink()
    me = Owner.me()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "shards" / f"{shards[1].name}.tmp-{me.host}-{me.host_id}-{dead.pid}-0badc0de").write_bytes(b"half a shard")
    _cli("generate", "--out", out, *KILL_ARGS, "--workers", "2")
    assert fingerprint(out) == prints and manifest_ids(out) == ids
    assert not list((out / "shards").glob("*.tmp-*"))


def test_validate_reports_each_problem_with_its_file(reference, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(reference[0] / "ref", ds)
    _cli("render-views", "--out", ds, "--resolution", 32, "--views", 4, "--workers", 1)
    assert "valid" in _cli("validate", ds).output
    shards = sorted((ds / "shards").glob("queries-*.h5"))
    with h5py.File(shards[0], "r+") as f:  # a mask outside the object, a lying label
        i = int(next(i for i in range(len(f["label"])) if f["label"][i]))
        m = f["mask_new"][i]
        m[0, 0] = True
        f["mask_new"][i] = m
        obj = f["object_mask"][i]
        obj[0, 0] = False
        f["object_mask"][i] = obj
        f["label"][i] = 0
    shards[1].write_bytes(shards[1].read_bytes()[:2048])  # truncated
    meta = json.loads((ds / "dataset.json").read_text())
    meta.pop("views")  # as if render-views never ran
    (ds / "dataset.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(main, ["validate", str(ds)])
    assert res.exit_code == 1
    text = res.output
    assert f"{shards[0]}:" in text and "outside object_mask" in text and "disagrees with anomaly_type" in text
    assert f"{shards[1]}: not readable HDF5" in text
    assert f"{ds / 'dataset.json'}: 2 query shapes have no reference views" in text


def test_stats_prints_table1_and_matches_the_manifest(reference):
    root = reference[0] / "ref"
    s = json.loads(_cli("stats", root, "--json").output)
    lines = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    assert s["queries"] == len(lines)
    t = s["table1"]
    assert t["anomaly"]["images"] == sum(1 for x in lines if x["label"] == 1)
    assert t["normal"]["images"] == sum(1 for x in lines if x["label"] == 0)
    assert all(1 <= t[k]["views"][0] <= t[k]["views"][2] <= t[k]["views"][1] <= 2 for k in t if t[k]["images"])
    assert sum(v["images"] for v in s["splits"].values()) == len(lines)
    text = _cli("stats", root).output
    assert "| #Views |" in text and "#Normal" in text


# --- job-array members at once in one folder, as on several hosts ------------------------------------
MEMBERS = 6
ARRAY_ARGS = ["--anomaly", "all", "--num-shapes", "6", "--resolution", "32", "--samples", "1", "--shard-size", "2",
              "--seed", "0"]
VIEW_ARGS = ["--resolution", "32", "--views", "4", "--shard-size", "1"]


def _unshare_ok() -> str | None:
    """Why PID namespaces cannot be made here, or None."""
    if not shutil.which("unshare"):
        return "no unshare(1)"
    res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"], capture_output=True,
                         text=True)
    return None if res.returncode == 0 and res.stdout.strip() == "1" else f"unshare --pid failed: {res.stderr.strip()}"


def _member(out: Path, index: int, go: Path) -> subprocess.Popen:
    """Array member ``index``: generate then render-views, started when ``go`` appears; odd members
    run as pid 1 of a PID namespace of their own (their pids mean nothing to the others: another host)."""
    share = ["--workers", "1", "--num-shards", str(MEMBERS), "--shard-index", str(index)]
    gen = [sys.executable, "-m", "brokenchairs", "generate", "--out", str(out), *ARRAY_ARGS, *share]
    views = [sys.executable, "-m", "brokenchairs", "render-views", "--out", str(out), *VIEW_ARGS, *share]
    script = (f"while [ ! -e {go} ]; do sleep 0.005; done; "
              f"{' '.join(gen)} && exec {' '.join(views)}")
    cmd = ["sh", "-c", script]
    if index % 2:
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run_members(out: Path, go: Path, kill: int | None = None, members=range(MEMBERS), timeout: float = 900) -> dict:
    """Start ``members`` at one moment; SIGKILL member ``kill`` once one of its shards is complete
    (and before all are). Returns {index: (exit code, output)}; the killed member's code is -9."""
    go.unlink(missing_ok=True)
    procs = {i: _member(out, i, go) for i in members}
    go.touch()
    t0 = time.time()
    if kill is not None:
        while time.time() - t0 < timeout and procs[kill].poll() is None:
            meta = out / "dataset.json"
            shards = json.loads(meta.read_text())["queries"]["shards"][kill::MEMBERS] if meta.exists() else []
            done = sum((out / "shards" / n).exists() for n in shards)
            if 1 <= done < len(shards):
                os.killpg(procs[kill].pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    results = {}
    for i, p in procs.items():
        try:
            output, _ = p.communicate(timeout=max(1, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            output, _ = p.communicate()
        results[i] = (p.returncode, output)
    return results


@pytest.fixture(scope="module")
def array_reference(tmp_path_factory):
    why = _unshare_ok()
    if why:
        pytest.skip(f"PID namespaces are needed to stand in for other hosts ({why}); run the tests as root on Linux")
    root = tmp_path_factory.mktemp("array") / "ref"
    _cli("generate", "--out", root, *ARRAY_ARGS, "--workers", "1")
    return root, fingerprint(root), manifest_ids(root)


def _leftover_temporaries(out: Path) -> list[Path]:
    return [p for folder in (out, out / "shards") for p in folder.glob("*.tmp-*")]


def test_six_members_at_once_in_one_folder_across_pid_namespaces_equal_one_run(array_reference, tmp_path):
    ref, prints, ids = array_reference
    out = tmp_path / "shared"
    results = _run_members(out, tmp_path / "go")
    assert all(code == 0 for code, _ in results.values()), {i: r[1][-1500:] for i, r in results.items() if r[0]}
    assert fingerprint(out) == prints and manifest_ids(out) == ids
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    assert "valid" in _cli("validate", out).output
    assert not _leftover_temporaries(out) and not list(out.glob(".*.lock"))


def test_a_member_killed_with_sigkill_midway_then_rerun_completes_the_dataset(array_reference, tmp_path):
    ref, prints, ids = array_reference
    out, victim = tmp_path / "shared", 3  # odd: pid 1 in a PID namespace of its own
    results = _run_members(out, tmp_path / "go", kill=victim)
    assert results[victim][0] == -signal.SIGKILL, results[victim][1][-1500:]
    assert all(code == 0 for i, (code, _) in results.items() if i != victim)
    assert not (out / "manifest.jsonl").exists()  # the dataset misses the victim's other shards
    leftovers = _leftover_temporaries(out)
    # the victim's half-written files, if the kill caught one, belong to a host nobody can judge: kept
    assert all(parse_tmp(p.name).host_id != Owner.me().host_id for p in leftovers), leftovers
    code, output = _run_members(out, tmp_path / "go2", members=[victim])[victim]  # the scheduler's retry
    assert code == 0, output[-1500:]
    assert fingerprint(out) == prints and manifest_ids(out) == ids
    assert "valid" in _cli("validate", out).output
