"""The shard field table (dataset/schema.py): the writer makes exactly its fields, validate's check
accepts what the writer makes and names what deviates from it."""

from __future__ import annotations

import h5py
import numpy as np

from brokenchairs.dataset import schema
from brokenchairs.dataset.queries import QuerySample
from brokenchairs.dataset.shards import write_query_shard, write_view_shard
from brokenchairs.dataset.views import ViewSet


def _sample(i: int, res: int = 16) -> QuerySample:
    rng = np.random.default_rng(i)
    mask = np.zeros((res, res), bool)
    mask[4:8, 5:9] = i % 2 == 1
    return QuerySample(sample_id=f"s{i}", shape_id="shape", unit_id="u", anomaly_type="missing" if i % 2 else "normal",
                       part_path="chair/leg" if i % 2 else "", image=rng.integers(0, 255, (res, res, 3), np.uint8),
                       object_mask=np.ones((res, res), bool), mask_new=np.zeros((res, res), bool), mask_old=mask,
                       bbox=np.array([5, 4, 9, 8], np.float32) if i % 2 else np.full(4, np.nan, np.float32),
                       depth=rng.random((res, res)).astype(np.float32), K=np.eye(3), world_to_cam=np.eye(4),
                       azimuth=0.5, elevation=0.3, light_id=1, material_id="m")


def _views(res: int = 16, stride: int = 4, v: int = 3) -> ViewSet:
    rng = np.random.default_rng(0)
    return ViewSet(shape_id="shape", gray=rng.integers(0, 255, (v, res, res), np.uint8),
                   depth=rng.random((v, res, res)).astype(np.float32), K=np.stack([np.eye(3)] * v),
                   world_to_cam=np.stack([np.eye(4)] * v), azimuth=np.zeros(v), elevation=np.zeros(v),
                   patch_xyz=rng.random((v, res // stride, res // stride, 3)).astype(np.float32),
                   patch_valid=np.ones((v, res // stride, res // stride), bool))


def test_the_writer_makes_the_table_and_check_accepts_it(tmp_path):
    path = tmp_path / "q.h5"
    samples = [_sample(i) for i in range(3)]
    write_query_shard(path, samples, ["{}"] * 3, {"resolution": 16})
    with h5py.File(path) as f:
        assert set(f) == set(schema.names(schema.QUERY_FIELDS))
        assert schema.check(f, schema.QUERY_FIELDS) == []
        for field in schema.QUERY_FIELDS:
            assert f[field.name].shape == (3, *field.item_shape({"H": 16, "W": 16}))
    path = tmp_path / "v.h5"
    write_view_shard(path, [_views()])
    with h5py.File(path) as f:
        assert set(f["shape"]) == set(schema.names(schema.VIEW_FIELDS))
        assert schema.check(f["shape"], schema.VIEW_FIELDS, stride=4) == []
        assert schema.check(f["shape"], schema.VIEW_FIELDS, stride=8) == [
            "patch_xyz has dtype float32 shape (3, 4, 4, 3), expected float32 (3, 2, 2, 3)",
            "patch_valid has dtype bool shape (3, 4, 4), expected bool (3, 2, 2)"]


def test_check_names_a_missing_field_a_dtype_and_a_length(tmp_path):
    path = tmp_path / "q.h5"
    write_query_shard(path, [_sample(i) for i in range(2)], ["{}"] * 2, {"resolution": 16})
    with h5py.File(path, "r+") as f:
        del f["light_id"]
        assert schema.check(f, schema.QUERY_FIELDS) == ["lacks light_id"]
        f.create_dataset("light_id", data=np.zeros(3, np.float32))
        assert schema.check(f, schema.QUERY_FIELDS) == [
            "light_id: first dimension 3, image has 2",
            "light_id has dtype float32 shape (3,), expected uint8 (2,)"]
