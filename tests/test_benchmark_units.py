"""Benchmark pieces without Blender: metrics vs sklearn, box AP by hand, augmentation keeps the box
on the mask, sampler determinism and DDP partitioning, viewpoint from correspondences, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from brokenchairs.benchmark.config import resolve_config
from brokenchairs.dataset.index import DatasetIndex, QueryRef
from brokenchairs.benchmark.data import EpochSampler, augment, closest_view, select_views
from brokenchairs.benchmark.device import resolve_device
from brokenchairs.benchmark.metrics import box_ap, compute_metrics, paired_iou
from brokenchairs.benchmark.pair_loss import pair_loss
from brokenchairs.benchmark.viewpoint import predict_view
from brokenchairs.errors import InputError
from brokenchairs.dataset.queries import bbox_of, twin_id
from brokenchairs.dataset.splits import PAPER_RATIOS, assign_splits, split_of


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


def test_cell_metrics_equal_sklearn():
    y, s, c = _fixed()
    rng = np.random.default_rng(5)
    cell_max = np.clip(s + rng.normal(0, 0.2, len(s)), 0, 1)
    cell_true = rng.random(500) < 0.1
    cell_prob = np.clip(0.3 * cell_true + rng.random(500), 0, 1)
    m = compute_metrics(y, s, c, cell_max=cell_max, cell_prob=cell_prob, cell_true=cell_true)
    assert m["cell_auc"] == pytest.approx(roc_auc_score(y, cell_max))
    assert m["cell_localisation_auc"] == pytest.approx(roc_auc_score(cell_true, cell_prob))
    assert "cell_auc" not in compute_metrics(y, s, c)


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


def _flat(batches):
    return [key for batch in batches for key in batch]


def test_sampler_is_deterministic_covers_each_sample_and_partitions_ranks():
    index = _index()
    s = EpochSampler(index, seed=4, batch_size=5, group_shapes=2, drop_last=False)
    s.set_epoch(3)
    a, b = list(s), list(s)
    assert a == b and sorted(i for i, _, _ in _flat(a)) == list(range(len(index)))
    assert all(len(batch) == 5 for batch in a) and len(s) == len(a) == 7
    s.set_epoch(4)
    assert [i for i, _, _ in _flat(s)] != [i for i, _, _ in _flat(a)]
    # resuming mid-epoch yields exactly the remaining batches, with the same per-sample seeds
    s.set_epoch(3, start=2)
    assert list(s) == a[2:] and len(s) == 5
    # blocks of 2 shapes (10 samples): every batch of 5 lies within one block
    assert all(len({index.queries[i].shape_id for i, _, _ in batch}) <= 2 for batch in a)
    ranks = [EpochSampler(index, seed=4, batch_size=5, rank=r, world=3, drop_last=False) for r in range(3)]
    for r in ranks:
        r.set_epoch(3)
    parts = [[i for i, _, _ in _flat(r)] for r in ranks]
    assert len({len(p) for p in parts}) == 1 and set().union(*map(set, parts)) == set(range(len(index)))


def test_sampler_groups_shapes_per_batch_and_shares_their_views():
    index = _index(n_shapes=8, per_shape=6)
    s = EpochSampler(index, seed=1, batch_size=4, shapes_per_batch=2, group_shapes=4)
    batches = list(s)
    assert len(batches) == len(s) == 12 and all(len(b) == 4 for b in batches)
    for batch in batches:
        by_shape: dict = {}
        for i, _, view_seed in batch:
            by_shape.setdefault(index.queries[i].shape_id, set()).add(view_seed)
        assert len(by_shape) <= 2 and all(len(seeds) == 1 for seeds in by_shape.values())  # one view draw per shape
    # a final incomplete batch is dropped (BatchNorm and the released loader's drop_last)
    assert len(EpochSampler(_index(n_shapes=3, per_shape=3), seed=0, batch_size=4)) == 2


def _twin_index(n_shapes=6, per_shape=4):
    """Every shape: per_shape anomalous queries, each with its normal twin, and two plain normals."""
    qs = []
    for s in range(n_shapes):
        for v in range(per_shape):
            qs.append(QueryRef("s.h5", len(qs), f"u{s}/v{v}", f"shape{s}", 1, "broken", "train"))
            qs.append(QueryRef("s.h5", len(qs), twin_id(f"u{s}/v{v}"), f"shape{s}", 0, "normal", "train"))
        qs += [QueryRef("s.h5", len(qs) + k, f"n{s}/v{k}", f"shape{s}", 0, "normal", "train") for k in range(2)]
    return DatasetIndex(root=None, queries=qs, view_shard={}, resolution=64, num_views=20)


@pytest.mark.parametrize("shapes_per_batch", [0, 2])
def test_twin_pairs_move_together_and_share_their_augmentation(shapes_per_batch):
    index = _twin_index()
    pairs = index.twin_pairs()
    assert len(pairs) == 2 * 6 * 4 and all(index.queries[r].label == 1 for r in pairs.values())
    assert all(index.queries[i].sample_id.startswith(index.queries[r].sample_id) for i, r in pairs.items())
    s = EpochSampler(index, seed=2, batch_size=6, group_shapes=3, shapes_per_batch=shapes_per_batch, pairs=pairs)
    order = s.order()
    assert sorted(order) == list(range(len(index)))
    for k, i in enumerate(order):  # each anomalous member is followed by its twin
        if pairs.get(i) == i:
            assert pairs[order[k + 1]] == i and order[k + 1] != i
    seeds = {}
    for batch in s:
        for i, seed, _ in batch:
            seeds[i] = seed
    together = [r for r in set(pairs.values()) if r in seeds and pairs_twin(pairs, r) in seeds]
    assert together and all(seeds[r] == seeds[pairs_twin(pairs, r)] for r in together)
    assert len({seeds[r] for r in together}) == len(together)  # different pairs, different draws
    # without pairs the same index gives the twins no shared seed and no adjacency
    plain = [seed for batch in EpochSampler(index, seed=2, batch_size=6, group_shapes=3) for _, seed, _ in batch]
    assert len(set(plain)) == len(plain)


def pairs_twin(pairs, root):
    return next(i for i, r in pairs.items() if r == root and i != root)


def test_pair_loss_is_the_mean_logistic_ranking_over_complete_pairs():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.3, 1.0, -2.0], requires_grad=True)
    pair = torch.tensor([4, 4, 9, 9, 7, -1])  # pair 7 lost its twin to another batch
    label = torch.tensor([1, 0, 0, 1, 1, 0])
    loss = pair_loss(logits, pair, label)
    expected = (np.log1p(np.exp(-1.0 - 2.0)) + np.log1p(np.exp(0.5 - 0.3))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[0] < 0 < logits.grad[1] and logits.grad[3] < 0 < logits.grad[2]  # anomalous up, twin down
    assert logits.grad[4] == 0 and logits.grad[5] == 0
    none = pair_loss(logits, torch.full((6,), -1), label)
    assert none.item() == 0 and none.requires_grad


def test_pair_weight_needs_twins():
    with pytest.raises(InputError, match="pair_weight > 0 needs twins=true"):
        resolve_config("resnet18-fpn", "cpu", None, {"pair_weight": 1.0})
    assert resolve_config("resnet18-fpn", "cpu", None, {"pair_weight": 1.0, "twins": True}).pair_weight == 1.0


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
    assert (cfg.heads, cfg.head_dim, cfg.tau, cfg.momentum, cfg.adam_beta1, cfg.box_l1_weight, cfg.box_giou_weight) == \
        (8, 64, 0.1, 0.999, 0.0, 5.0, 2.0)
    release = resolve_config("cmt", "release")
    assert (release.epochs, release.batch_size, release.views_train, release.lr_drop) == (100, 6, 5, 20)
    cfg = resolve_config("cmt", "tiny", overrides={"lr": "1e-3", "augment": "false"})
    assert cfg.lr == 1e-3 and cfg.augment is False and cfg.epochs == 2
    # precedence: preset < file < --set < explicit flag; an unset flag (None) changes nothing
    f = tmp_path / "c.json"
    f.write_text('{"epochs": 3, "lr": 0.01, "vlfa_weight": 0.25}')
    cfg = resolve_config("cmt", "tiny", f, overrides={"epochs": "4"}, flags={"epochs": None, "lr": 0.5})
    assert (cfg.epochs, cfg.lr, cfg.vlfa_weight) == (4, 0.5, 0.25)
    assert resolve_config("cmt", "paper", overrides={"momentum": "none"}).momentum is None
    with pytest.raises(InputError, match="vlfa_weight"):
        resolve_config("cmt", "paper", overrides={"vlfa_weight": "2"})
    with pytest.raises(InputError, match="epochs expects a whole number"):
        resolve_config("cmt", "paper", overrides={"epochs": "2.5"})
    bad = tmp_path / "bad.json"
    bad.write_text('{"no_such_option": 1}')
    with pytest.raises(InputError, match="no_such_option"):
        resolve_config("cmt", "paper", bad)
    with pytest.raises(InputError, match="unknown model"):
        resolve_config("cmt-z", "paper")


def test_box_acc_is_the_released_definition_by_hand():
    # anomalous images 0-3, normal 4; flagged (score >= 0.5): 0, 1, 3, 4
    true = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4], float)
    pred = np.array([[0, 0, 10, 10],    # IoU 1   -> counts
                     [0, 0, 10, 5],     # IoU 0.5 -> not > 0.5
                     [0, 0, 10, 10],    # not flagged: ignored
                     [0, 0, 10, 8],     # IoU 0.8 -> counts
                     [0, 0, 10, 10]], float)  # normal: ignored
    scores = np.array([0.9, 0.7, 0.2, 0.6, 0.8])
    m = compute_metrics([1, 1, 1, 1, 0], scores, [1, 1, 1, 1, 0], pred, true)
    assert m["box_acc"] == pytest.approx(2 / 3)
    assert m["box_iou_flagged"] == pytest.approx((1 + 0.5 + 0.8) / 3)


def test_paired_iou_is_element_wise_and_linear_in_memory():
    from torchvision.ops import box_iou

    from brokenchairs.benchmark.metrics import paired_iou

    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 100, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 100, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    np.testing.assert_allclose(paired_iou(a, b), box_iou(torch.tensor(a), torch.tensor(b)).diagonal().numpy(), atol=1e-12)
    big = np.tile(a, (2000, 1))  # 100K boxes: an N x N matrix would need 80 GB
    assert paired_iou(big, big).shape == (100_000,) and np.allclose(paired_iou(big, big), 1.0)


def test_auto_device_is_cuda_exactly_when_torch_sees_one_and_other_names_pass_through(monkeypatch):
    for seen, expect in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda seen=seen: seen)
        assert resolve_device("auto") == expect
        assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"



def test_every_reproduce_preset_loads_and_asks_only_what_generate_and_train_accept():
    """Each recipe of reproduce_presets.json: its rows are models, its --set values train options, its
    scored epochs inside every row's training, its anomaly kinds and balance ones generate knows."""
    from brokenchairs.benchmark.reproduce import Recipe, check_score_epochs, wanted_epochs
    from brokenchairs.data_manifests import load_json
    from brokenchairs.generation.pipeline.generate import KINDS
    from brokenchairs.generation.pipeline.plan import BALANCES

    for name in load_json("reproduce_presets.json"):
        recipe = Recipe.load(name)
        assert all(wanted_epochs(recipe, row) >= 1 for row in recipe.rows)
        check_score_epochs(recipe)
        assert set(recipe.anomalies) <= set(KINDS) | {"all"} and recipe.balance in BALANCES, name
    missing = Recipe.load("cpu-missing")
    last = wanted_epochs(missing, "cmt")  # its ensembles: every epoch trained at the dropped rate, the last included
    drop = missing.train_sets["lr_drop"]
    assert missing.anomalies == ("missing", "normal") and missing.score_epochs == tuple(range(drop + 1, last + 1))
    assert last == wanted_epochs(missing, "resnet18-fpn") == 12 and Recipe.load("cpu").anomalies == ("all",)


def test_check_reference_preset_is_cpu_missing_then_three_epochs_that_check_the_reference():
    """What the README and docs claim of cpu-missing-check-reference: the same data as cpu-missing, every
    row's training that of cpu-missing three epochs longer, and CMT's wrong references only in those three."""
    from dataclasses import asdict, replace

    from brokenchairs.benchmark.config import resolve_config
    from brokenchairs.benchmark.reproduce import Recipe, replicate_sets, row_model

    base, check = Recipe.load("cpu-missing"), Recipe.load("cpu-missing-check-reference")
    data_keys = ("shapes", "seed", "resolution", "samples", "views", "min_anomaly_pixels", "split_ratios",
                 "anomalies", "balance", "chair_variety", "rows", "views_test")
    assert {k: getattr(check, k) for k in data_keys} == {k: getattr(base, k) for k in data_keys}
    for row in check.rows:
        b = resolve_config(row_model(row), base.train_preset, None, replicate_sets(base, row, 0))
        c = resolve_config(row_model(row), check.train_preset, None, replicate_sets(check, row, 0))
        assert c.epochs == b.epochs + 3 and c.lr_drop == b.lr_drop
        if row == check.main:
            assert b.wrong_reference == 0 and c.wrong_reference > 0 and c.wrong_reference_from == b.epochs
            c = replace(c, wrong_reference=0.0, wrong_reference_kin=b.wrong_reference_kin, wrong_reference_from=0)
        assert asdict(replace(c, epochs=b.epochs)) == asdict(b), row
    assert check.score_epochs == tuple(range(b.epochs + 1, b.epochs + 4))
