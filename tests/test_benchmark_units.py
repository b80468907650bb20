"""Benchmark pieces without Blender: metrics vs sklearn, box AP by hand, augmentation keeps the box
on the mask, sampler determinism and DDP partitioning, viewpoint from correspondences, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from brokenchairs.benchmark.config import resolve_config
from brokenchairs.benchmark.data import DatasetIndex, EpochSampler, QueryRef, augment, closest_view, select_views
from brokenchairs.benchmark.metrics import box_ap, compute_metrics, paired_iou
from brokenchairs.benchmark.viewpoint import predict_view
from brokenchairs.errors import InputError
from brokenchairs.generation.queries import bbox_of
from brokenchairs.generation.splits import PAPER_RATIOS, assign_splits, split_of


def _fixed(n=200, seed=3):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, n)
    labels = (codes > 0).astype(int)
    scores = np.clip(0.5 * labels + rng.normal(0.25, 0.25, n), 0, 1)
    return labels, scores, codes


def test_metrics_equal_sklearn_on_fixed_arrays():
    y, s, c = _fixed()
    m = compute_metrics(y, s, c)
    p = (s >= 0.5).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["precision"] == pytest.approx(precision_score(y, p))
    assert m["recall"] == pytest.approx(recall_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p))
    assert m["normal_accuracy"] == pytest.approx(accuracy_score(y[y == 0], p[y == 0]))
    for code, name in ((1, "position"), (3, "broken")):
        sel = (c == code) | (c == 0)
        assert m["per_type"][name]["auc"] == pytest.approx(roc_auc_score(y[sel], s[sel]))
        assert m["per_type"][name]["accuracy"] == pytest.approx(accuracy_score(y[c == code], p[c == code]))
    assert sum(v["n"] for v in m["per_type"].values()) == len(y)


def test_auc_is_none_not_invented_for_one_class():
    m = compute_metrics([0, 0, 0], [0.1, 0.7, 0.2], [0, 0, 0])
    assert m["auc"] is None and m["accuracy"] == pytest.approx(2 / 3)


def test_box_ap_matches_a_hand_computed_voc_ap():
    # 4 images with a box (GT), 1 normal; predictions ranked by score
    true = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4], float)
    pred = np.array([[0, 0, 10, 10],   # hit
                     [20, 20, 30, 30],  # miss
                     [0, 0, 10, 9],     # hit (IoU 0.9)
                     [0, 0, 5, 5],      # miss (IoU 0.25)
                     [0, 0, 10, 10]], float)  # normal image: false positive
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.85])
    # ranked: hit(0.9) P=1 R=.25 ; FP(0.85) ; miss(0.8) ; hit(0.7) P=2/4 R=.5 ; miss(0.6)
    expected = (1.0 + 2 / 4) / 4
    assert box_ap(scores, pred, true) == pytest.approx(expected)
    m = compute_metrics([1, 1, 1, 1, 0], scores, [3, 3, 3, 3, 0], pred, true)
    assert m["box_ap50"] == pytest.approx(expected)
    assert m["mean_iou"] == pytest.approx((1 + 0 + 0.9 + 0.25) / 4)


def test_paired_iou_is_elementwise_equal_to_torchvision_and_linear_in_memory():
    import tracemalloc

    from torchvision.ops import box_iou

    n = 100_000
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (2, n, 2))
    wh = rng.uniform(1, 80, (2, n, 2))
    pred, true = (np.concatenate([xy[i], xy[i] + wh[i]], 1) for i in (0, 1))
    true[::7] = pred[::7]  # some exact hits, and many disjoint pairs (IoU 0)
    tracemalloc.start()
    iou = paired_iou(pred, true)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert iou.shape == (n,) and peak < 40 * n * 8  # a few N-vectors; all pairs would be N^2 * 8 = 80 GB
    for k in range(0, n, 25_000):  # torchvision's all-pairs IoU, on blocks small enough to hold
        block = slice(k, k + 500)
        ref = box_iou(torch.as_tensor(pred[block]), torch.as_tensor(true[block])).diagonal().numpy()
        np.testing.assert_allclose(iou[block], ref, rtol=1e-12, atol=0)
    assert np.all(iou[::7] == 1) and (iou == 0).sum() > n // 10 and np.all((iou >= 0) & (iou <= 1))


def test_augmentation_moves_image_mask_and_box_together():
    rng = np.random.default_rng(0)
    for trial in range(20):
        mask = torch.zeros(64, 64, dtype=torch.bool)
        x0, y0 = rng.integers(8, 30, 2)
        mask[y0:y0 + 16, x0:x0 + 12] = True
        image = torch.zeros(3, 64, 64, dtype=torch.uint8)
        image[0][mask] = 255
        box = torch.from_numpy(bbox_of(mask.numpy()))
        img2, mask2, box2 = augment(image, mask, box, np.random.default_rng(trial))
        assert img2.shape == image.shape and mask2.shape == mask.shape and mask2.dtype == torch.bool
        lit = img2[0] > 127  # the image's red square and the mask cover the same pixels up to resampling
        assert (lit & mask2).sum() / (lit | mask2).sum() > 0.8
        np.testing.assert_allclose(box2.numpy(), bbox_of(mask2.numpy()), atol=1.2)
    # a normal sample (no box) stays without a box
    _, _, none = augment(image, mask, torch.full((4,), float("nan")), np.random.default_rng(1))
    assert torch.isnan(none).all()


def _index(n_shapes=7, per_shape=5):
    qs = [QueryRef("s.h5", i, f"q{i}", f"shape{i // per_shape}", i % 2, "normal", "train")
          for i in range(n_shapes * per_shape)]
    return DatasetIndex(root=None, queries=qs, view_shard={}, resolution=64, num_views=20)


def test_sampler_is_deterministic_covers_each_sample_and_partitions_ranks():
    index = _index()
    s = EpochSampler(index, seed=4, group_shapes=2)
    s.set_epoch(3)
    a, b = list(s), list(s)
    assert a == b and sorted(i for i, _ in a) == list(range(len(index)))
    s.set_epoch(4)
    assert [i for i, _ in s] != [i for i, _ in a]
    # resuming mid-epoch yields exactly the tail, with the same per-sample seeds
    s.set_epoch(3, start=11)
    assert list(s) == a[11:]
    # blocks of 2 shapes (10 samples): any 10 consecutive samples span at most two blocks = 4 shapes
    shapes = [index.queries[i].shape_id for i, _ in a]
    assert max(len(set(shapes[k:k + 10])) for k in range(len(shapes) - 10)) <= 4
    ranks = [EpochSampler(index, seed=4, rank=r, world=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(3)
    parts = [[i for i, _ in r] for r in ranks]
    assert len({len(p) for p in parts}) == 1 and set().union(*map(set, parts)) == set(range(len(index)))


def test_view_selection_and_closest_view():
    assert list(select_views(20, 20, None)) == list(range(20))
    assert list(select_views(20, 5, None)) == [0, 4, 8, 12, 16]
    pick = select_views(20, 10, np.random.default_rng(0))
    assert len(set(pick)) == 10 and list(pick) == sorted(pick)
    az = np.arange(20) * 2 * np.pi / 20
    el = np.full(20, np.pi / 6)
    assert closest_view(az[7] + 0.1, np.pi / 8, az, el) == 7
    assert closest_view(-0.05, np.pi / 5, az, el) == 0


def test_viewpoint_from_correspondences_picks_the_view_matching_in_place():
    g = torch.Generator().manual_seed(0)
    grid, c, N = 4, 16, 5
    feats = torch.nn.functional.normalize(torch.randn(grid * grid, c, generator=g), dim=-1)
    views = []
    for n in range(N):  # view n sees the query's patches shifted by n cells (view 2: in place)
        views.append(feats.roll((n - 2) * grid, 0))
    zv = torch.stack(views)[None]
    zq = feats[None]
    q_valid = torch.ones(1, grid * grid, dtype=torch.bool)
    v_valid = torch.ones(1, N, grid * grid, dtype=torch.bool)
    pick, dist = predict_view(zq, q_valid, zv, v_valid, grid)
    assert pick.item() == 2 and dist[0, 2] == 0


def test_splits_are_by_shape_stable_and_near_the_paper_ratios():
    ids = [f"shape-{i}" for i in range(4000)]
    parts = assign_splits(ids)
    assert sum(map(len, parts.values())) == len(ids)
    for name, ratio in zip(("train", "val", "test"), PAPER_RATIOS):
        assert abs(len(parts[name]) / len(ids) - ratio) < 0.02
    assert assign_splits(ids[:100]) == {k: [i for i in v if i in set(ids[:100])] for k, v in parts.items()}
    assert split_of("x", seed=1) in ("train", "val", "test")


def test_presets_and_overrides_resolve_and_bad_values_name_the_problem(tmp_path):
    cfg = resolve_config("cmt", "paper")
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.topk, cfg.blocks, cfg.views_train, cfg.views_test) == \
        (2e-5, 8, 20, 100, 3, 10, 20)
    cfg = resolve_config("cmt", "tiny", overrides={"lr": "1e-3", "augment": "false"})
    assert cfg.lr == 1e-3 and cfg.augment is False and cfg.epochs == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"no_such_option": 1}')
    with pytest.raises(InputError, match="no_such_option"):
        resolve_config("cmt", "paper", bad)
    with pytest.raises(InputError, match="unknown model"):
        resolve_config("cmt-z", "paper")
