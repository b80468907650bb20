"""The PartNet loader on the six real chairs, and every bad input it must name (on procedural
chairs, which are written in the same layout)."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.partnet import find_shape_dirs, iter_shapes, load_shape, read_obj

LEAVES = {"2323": 7, "43872": 11, "37989": 5, "45075": 11, "37614": 4, "2320": 19}


def test_leaf_counts_and_meshes_from_leaves_only(partnet_dir):
    for anno, n in LEAVES.items():
        shape = load_shape(partnet_dir / anno)
        assert len(shape.parts()) == n, anno
        root = json.loads((partnet_dir / anno / "result_after_merging.json").read_text())[0]
        leaf_objs, stack = [], [root]
        while stack:
            node = stack.pop()
            stack.extend(node.get("children") or [])
            leaf_objs += [] if node.get("children") else node["objs"]
        # real quirk: a root may list objs that no leaf owns; leaves never share an obj
        assert len(set(leaf_objs)) == len(leaf_objs) and set(leaf_objs) <= set(root["objs"])
        raw_faces = sum(
            sum(1 for line in (partnet_dir / anno / "objs" / f"{o}.obj").read_text().splitlines() if line.startswith("f "))
            for o in leaf_objs
        )
        assert sum(len(p.mesh.faces) for p in shape.parts()) == raw_faces


def test_normalised_z_up_frame(partnet_dir):
    for shape in iter_shapes(partnet_dir):
        lo, hi = shape.bounds
        assert shape.diagonal == pytest.approx(1.0)
        assert lo[2] == pytest.approx(0.0, abs=1e-9)
        assert (lo[:2] + hi[:2]) == pytest.approx([0, 0], abs=1e-9)
        by_top = {}
        for p in shape.parts():
            by_top.setdefault(p.path[1], []).append(p.mesh.vertices)
        top = {k: np.concatenate(v)[:, 2].max() for k, v in by_top.items()}
        bottom = {k: np.concatenate(v)[:, 2].min() for k, v in by_top.items()}
        assert top["chair_back"] >= top["chair_seat"], shape.shape_id  # z is up
        assert top["chair_back"] > 0.5 * hi[2], shape.shape_id
        assert bottom["chair_base"] < bottom["chair_seat"], shape.shape_id
        # the back sits behind the seat (+y), the chair faces -y
        y = {k: np.concatenate(v)[:, 1].mean() for k, v in by_top.items()}
        assert y["chair_back"] > y["chair_seat"], shape.shape_id


def test_label_paths_keep_the_tree(partnet_dir):
    shape = load_shape(partnet_dir / "2320")
    paths = {p.path_str for p in shape.parts()}
    assert "chair/chair_base/star_leg_base/star_leg_set/caster/wheel" in paths
    assert load_shape(partnet_dir / "37614").parts()[-1].path == ("chair", "chair_base")
    arms = [n for _, n in load_shape(partnet_dir / "45075").iter_nodes() if n.label == "chair_arm"]
    assert len(arms) == 2


def test_loading_a_directory_is_lazy(partnet_dir):
    it = iter_shapes(partnet_dir)
    assert isinstance(it, types.GeneratorType)
    assert next(it).shape_id == "2320"


@pytest.fixture()
def chair_copy(tmp_path, synth_dir):
    src = find_shape_dirs(synth_dir)[0]
    return shutil.copytree(src, tmp_path / src.name)


def _first_leaf_obj(folder):
    tree = json.loads((folder / "result_after_merging.json").read_text())
    node = tree[0]
    while node.get("children"):
        node = node["children"][0]
    return folder / "objs" / f"{node['objs'][0]}.obj"


def _break(kind, folder):
    if kind == "missing folder":
        shutil.rmtree(folder)
        return folder, "does not exist"
    if kind == "no result json":
        (folder / "result.json").unlink()
        (folder / "result_after_merging.json").unlink()
        return folder, "missing result_after_merging.json"
    if kind == "not a tree":
        (folder / "result_after_merging.json").write_text('{"text": "chair"}')
        return folder / "result_after_merging.json", "not a PartNet tree"
    if kind == "bad json":
        (folder / "result_after_merging.json").write_text("[{")
        return folder / "result_after_merging.json", "not valid JSON"
    obj = _first_leaf_obj(folder)
    if kind == "missing obj":
        obj.unlink()
        return obj, "mesh file is missing"
    if kind == "empty obj":
        obj.write_text("")
        return obj, "mesh file is empty"
    if kind == "nan vertex":
        lines = obj.read_text().splitlines()
        lines[0] = "v nan 0 0"
        obj.write_text("\n".join(lines))
        return obj, "NaN or infinite"
    if kind == "no faces":
        obj.write_text("\n".join(line for line in obj.read_text().splitlines() if line.startswith("v ")))
        return obj, "no faces"
    raise AssertionError(kind)


BAD = ["missing folder", "no result json", "not a tree", "bad json", "missing obj", "empty obj", "nan vertex", "no faces"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_names_the_file(kind, chair_copy):
    path, problem = _break(kind, chair_copy)
    with pytest.raises(InputError) as err:
        load_shape(chair_copy)
    assert err.value.path == str(path) and problem in err.value.problem


@pytest.mark.parametrize("kind", BAD)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(kind, chair_copy, tmp_path):
    path, problem = _break(kind, chair_copy)
    out = tmp_path / "out" / "chair.glb"
    res = CliRunner().invoke(main, ["shapes", "export", str(chair_copy), "--out", str(out)])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0]
    assert not out.parent.exists()


def test_obj_reader_handles_polygons_and_slashes(tmp_path):
    f = tmp_path / "q.obj"
    f.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1 4//1\nf -4 -3 -2\n")
    v, faces = read_obj(f)
    assert v.shape == (4, 3)
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2]]


def test_single_sided_faces_keeps_one_copy_of_each_double_sided_triangle():
    from brokenchairs.generation.shapes.shape import single_sided_faces

    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 3))
    f = np.array([rng.choice(30, 3, replace=False) for _ in range(40)])
    np.testing.assert_array_equal(single_sided_faces(v, f), f)  # nothing doubled: untouched, order kept
    doubled = np.concatenate([f, f[:, ::-1], np.roll(f, 1, axis=1)])  # reversed and rotated copies
    np.testing.assert_array_equal(single_sided_faces(v, doubled), f)
    # a copy over duplicated vertices (the same points, other indices) is a copy too
    v2 = np.concatenate([v, v])
    np.testing.assert_array_equal(single_sided_faces(v2, np.concatenate([f, f[:, ::-1] + 30])), f)


def test_single_sided_faces_halves_a_double_sided_real_chair(partnet_dir):
    from brokenchairs.generation.shapes.shape import single_sided_faces

    def point_sets(verts, faces):
        return {frozenset(map(tuple, np.round(verts[t], 6))) for t in faces}

    halved = 0
    for part in load_shape(partnet_dir / "2323").parts():  # a ShapeNet-derived, fully double-sided chair
        kept = single_sided_faces(part.mesh.vertices, part.mesh.faces)
        assert point_sets(part.mesh.vertices, kept) == point_sets(part.mesh.vertices, part.mesh.faces)
        assert len(point_sets(part.mesh.vertices, kept)) == len(kept)  # no triangle twice
        halved += 2 * len(kept) <= len(part.mesh.faces) + 1
    assert halved == len(load_shape(partnet_dir / "2323").parts())
