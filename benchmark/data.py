"""A torch ``Dataset`` over query and view shards (DESIGN.md "Shards", paper 5).

Which queries a split holds comes from ``dataset.index.DatasetIndex`` (the format's reader).

``ShardDataset[i]`` or ``ShardDataset[(i, seed, view_seed)]`` returns one sample as uint8/float
tensors (the model-side normalisation is ``prepare_batch``, done on the device so the loader moves
bytes, not floats). Every random choice of a sample -- the flip, the crop -- comes from the
``seed`` handed in by the sampler, and which N views from ``view_seed`` (or ``seed``), never from a
global stream: a resumed run sees exactly the samples of an uninterrupted one, whatever the number
of loader workers. ``view_group`` identifies (shape, selected views): samples with equal groups
carry identical views, which the model encodes once.

h5py handles are opened lazily per process (DataLoader workers each open their own). Reference
views are shared by all the queries of a shape, so each process keeps an LRU cache of decoded
view groups, and ``EpochSampler`` batches queries of few shapes together (see there).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES
from brokenchairs.dataset.cameras import unproject_depth
from brokenchairs.dataset.index import DatasetIndex, QueryRef
from brokenchairs.dataset.shards import open_shard
from brokenchairs.dataset.views import points_to_patches
from brokenchairs.errors import InputError


def stable_key(*parts) -> int:
    """A signed 64-bit id of ``parts`` that is the same in every process and run (unlike ``hash``)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little", signed=True)


# --- augmentation (paper 5: random horizontal flip, random 224/256 crop resized back) ----------------
def augment(image: torch.Tensor, mask: torch.Tensor, box: torch.Tensor, rng: np.random.Generator,
            crop_frac: float = 224 / 256, flip_p: float = 0.5, points: torch.Tensor | None = None):
    """image (3,H,W) uint8, mask (H,W) bool, box (4,) xyxy px (NaN = none), optionally per-pixel
    world points (3,H,W) (NaN off the object, resampled nearest): one flip + crop for all.
    Returns (image, mask, box) or (image, mask, box, points)."""
    H, W = image.shape[-2:]
    has_box = bool(torch.isfinite(box).all())
    boxes = tv_tensors.BoundingBoxes(box[None] if has_box else torch.zeros(1, 4), format="XYXY", canvas_size=(H, W))
    img, msk = tv_tensors.Image(image), tv_tensors.Mask(mask[None].to(torch.uint8))
    flip = rng.random() < flip_p
    if flip:
        img, msk, boxes = TF.horizontal_flip(img), TF.horizontal_flip(msk), TF.horizontal_flip(boxes)
    ch, cw = round(H * crop_frac), round(W * crop_frac)
    top, left = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
    if points is not None:
        points = TF.horizontal_flip(points) if flip else points
        points = TF.resized_crop(points, top, left, ch, cw, [H, W], interpolation=TF.InterpolationMode.NEAREST)
    img = TF.resized_crop(img, top, left, ch, cw, [H, W], antialias=True)
    msk = TF.resized_crop(msk, top, left, ch, cw, [H, W], interpolation=TF.InterpolationMode.NEAREST)
    boxes = TF.resized_crop(boxes, top, left, ch, cw, [H, W])
    out_box = boxes.as_subclass(torch.Tensor)[0].clamp(min=0)
    out_box[0::2] = out_box[0::2].clamp(max=W)
    out_box[1::2] = out_box[1::2].clamp(max=H)
    if not has_box or (out_box[2] - out_box[0]) * (out_box[3] - out_box[1]) <= 0:
        out_box = torch.full((4,), float("nan"))
    out = (img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)[0].bool(), out_box)
    return out if points is None else (*out, points)


def xyxy_to_cxcywh_norm(box: torch.Tensor, H: int, W: int) -> torch.Tensor:
    x0, y0, x1, y1 = box.unbind(-1)
    return torch.stack([(x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H], -1)


def view_directions(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    az, el = np.asarray(azimuth, float), np.asarray(elevation, float)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


def closest_view(azimuth: float, elevation: float, view_az: np.ndarray, view_el: np.ndarray) -> int:
    """Index of the reference view whose camera direction is nearest the query's (paper 5)."""
    return int(np.argmax(view_directions(view_az, view_el) @ view_directions(azimuth, elevation)))


def select_views(num: int, wanted: int, rng: np.random.Generator | None) -> np.ndarray:
    """``wanted`` of ``num`` views: a random sorted subset (training) or evenly spaced (evaluation)."""
    if wanted <= 0 or wanted >= num:
        return np.arange(num)
    if rng is None:
        return np.unique(np.linspace(0, num, wanted, endpoint=False).astype(int))
    return np.sort(rng.choice(num, wanted, replace=False))


class ShardDataset(Dataset):
    """Samples of a ``DatasetIndex``; see the module docstring for keys and randomness."""

    def __init__(self, index: DatasetIndex, views: int = 10, train: bool = True, augment: bool = True,
                 with_views: bool = True, with_depth: bool = True, cache_shapes: int = 32, with_query_xyz: bool = False,
                 stride: int = 8, reference_of: dict[str, str] | None = None, pairs: dict[int, int] | None = None):
        self.index, self.views, self.train = index, views, train
        self.pairs = pairs or {}  # position -> its twin pair's anomalous position (sample["pair"]; -1 unpaired)
        self.reference_of = reference_of or {}  # query shape -> the shape whose views it gets (shuffled references)
        self.augment, self.with_views, self.with_depth = augment and train, with_views, with_depth
        self.with_query_xyz, self.stride = with_query_xyz, stride
        self.cache_shapes = cache_shapes
        self._pid = None
        self._files: dict[str, h5py.File] = {}
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self.cache_hits = self.cache_misses = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):  # handles never cross a process boundary
        return {**self.__dict__, "_files": {}, "_cache": OrderedDict(), "_pid": None}

    def _file(self, path: str, kind: str) -> h5py.File:
        if self._pid != os.getpid():  # a forked loader worker must not share its parent's HDF5 handles
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open_shard(Path(path), kind)
        return f

    def shape_views(self, shape_id: str) -> dict:
        hit = self._cache.get(shape_id)
        if hit is not None:
            self._cache.move_to_end(shape_id)
            self.cache_hits += 1
            return hit
        self.cache_misses += 1
        path = self.index.view_shard[shape_id]
        f = self._file(path, "views")
        if shape_id not in f:
            raise InputError(path, f"no views of shape {shape_id}")
        g = f[shape_id]
        names = ["gray", "K", "world_to_cam", "azimuth", "elevation", "patch_xyz", "patch_valid"]
        names += ["depth"] if self.with_depth else []
        try:
            rec = {k: g[k][()] for k in names}
        except (KeyError, OSError) as exc:
            raise InputError(path, f"corrupt view group {shape_id} ({exc})") from exc
        self._cache[shape_id] = rec
        while len(self._cache) > self.cache_shapes:
            self._cache.popitem(last=False)
        return rec

    def _query_points(self, f: h5py.File, q: QueryRef) -> torch.Tensor:
        """World points (3,H,W) of the query's pixels from its depth and camera, NaN off the object."""
        try:
            depth, K, w2c = f["depth"][q.row], f["K"][q.row], f["world_to_cam"][q.row]
        except (KeyError, OSError) as exc:
            raise InputError(q.shard, f"query row {q.row} has no depth/camera ({exc})") from exc
        return torch.from_numpy(unproject_depth(depth, K, w2c).astype(np.float32)).permute(2, 0, 1).contiguous()

    def __getitem__(self, key) -> dict:
        i, seed, view_seed, wrong = (tuple(key) + (None,) * 3)[:4] if isinstance(key, (tuple, list)) else (key, None, None, None)
        q = self.index.queries[i]
        rng = np.random.default_rng(seed) if (seed is not None and self.train) else None
        view_rng = np.random.default_rng(view_seed) if (view_seed is not None and self.train) else rng
        f = self._file(q.shard, "queries")
        try:
            image = torch.from_numpy(f["image"][q.row]).permute(2, 0, 1).contiguous()
            mask = torch.from_numpy(f["mask_new"][q.row] | f["mask_old"][q.row])
            box = torch.from_numpy(f["bbox"][q.row].astype(np.float32))
            az, el = float(f["azimuth"][q.row]), float(f["elevation"][q.row])
        except (KeyError, OSError) as exc:
            raise InputError(q.shard, f"corrupt query row {q.row} ({exc})") from exc
        H, W = image.shape[-2:]
        if wrong is not None:  # a normal photo beside another shape's views: anomalous, nothing to localise
            mask, box = torch.zeros_like(mask), torch.full((4,), float("nan"))
        points = self._query_points(f, q) if self.with_query_xyz else None
        if self.augment and rng is not None:
            image, mask, box, *rest = augment(image, mask, box, rng, points=points)
            points = rest[0] if rest else None
        has_box = bool(torch.isfinite(box).all())
        ref = wrong or self.reference_of.get(q.shape_id, q.shape_id)
        sample = {"query": image, "mask": mask, "label": torch.tensor(1 if wrong else q.label), "has_box": torch.tensor(has_box),
                  "bbox": xyxy_to_cxcywh_norm(box, H, W) if has_box else torch.zeros(4),
                  "bbox_xyxy": box if has_box else torch.full((4,), float("nan")),
                  "anomaly_code": torch.tensor(ANOMALY_CODES.get(q.anomaly_type, 255)),
                  "index": torch.tensor(i), "pair": torch.tensor(self.pairs.get(i, -1)), "sample_id": q.sample_id, "shape_id": q.shape_id,
                  "shape_key": torch.tensor(stable_key(ref)), "wrong_reference": torch.tensor(wrong is not None)}
        if points is not None:
            xyz, valid = points_to_patches(points.permute(1, 2, 0).numpy(), self.stride)
            # cells touching the anomalous region have no counterpart on the reference
            changed = mask.reshape(H // self.stride, self.stride, W // self.stride, self.stride).any(3).any(1).numpy()
            paired = valid & ~changed if wrong is None else np.zeros_like(valid)  # no query cell has a counterpart on a kin's views
            sample.update(query_xyz=torch.from_numpy(xyz), query_xyz_valid=torch.from_numpy(paired),
                          query_object=torch.from_numpy(valid))
        if not self.with_views:
            return sample
        v = self.shape_views(ref)
        sel = select_views(len(v["gray"]), self.views, view_rng)
        sample.update(views=torch.from_numpy(v["gray"][sel]), patch_xyz=torch.from_numpy(v["patch_xyz"][sel]),
                      patch_valid=torch.from_numpy(v["patch_valid"][sel]),
                      view_K=torch.from_numpy(v["K"][sel]).float(),
                      view_world_to_cam=torch.from_numpy(v["world_to_cam"][sel]).float(),
                      view_ids=torch.from_numpy(sel), view_group=torch.tensor(stable_key(ref, sel.tolist())),
                      closest_view=torch.tensor(closest_view(az, el, v["azimuth"][sel], v["elevation"][sel])))
        if self.with_depth:
            sample["view_depth"] = torch.from_numpy(v["depth"][sel])
        return sample


def prepare_batch(batch: dict, device: torch.device | str) -> dict:
    """Move a collated batch to ``device`` and normalise images to [-1, 1] (views cloned to 3 channels)."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    out["query"] = out["query"].float() / 127.5 - 1
    if "views" in out:
        out["views"] = (out["views"].float() / 127.5 - 1)[:, :, None].expand(-1, -1, 3, -1, -1)
    return out


class EpochSampler(Sampler):
    """Yields the batches of one epoch of one rank, each a list of ``(index, seed, view_seed)``,
    deterministically from (seed, epoch).

    Shapes are shuffled and taken in blocks of ``group_shapes`` (a loader worker's view cache then
    serves most samples of a block). With ``shapes_per_batch`` = 0 (the paper's sampling) the
    block's queries are shuffled together and each sample draws its own views. With
    ``shapes_per_batch`` = S > 0 the block is cut into groups of S shapes whose shuffled queries
    are interleaved, so a batch holds queries of about S shapes, and all queries of one shape in a
    batch share one draw of views (``view_seed``): the model encodes those views once per batch.
    Batches are then shuffled; the last, incomplete one is dropped when ``drop_last``. Under DDP
    each rank takes every ``world``-th batch (the list is padded to a multiple of ``world``).
    ``start`` skips batches already seen (exact resume mid-epoch).

    With ``wrong_reference`` = P > 0 and ``kin`` (shape -> the shapes whose views may stand in for
    its own, ``benchmark.wrong_reference``) each normal, unpaired query is, with probability P,
    paired with the views of one kin of its shape (one kin per shape and epoch), labelled
    anomalous, from epoch ``wrong_from`` on: its key gets a fourth element, that kin's id
    (``ShardDataset``).

    With ``pairs`` (``DatasetIndex.twin_pairs``: position -> its pair's anomalous position) the
    two members of a pair move as one unit, side by side, and share the augmentation seed (one
    flip and crop for both): a batch then holds minimal pairs, images that differ only in the
    anomaly. A pair cut by a batch boundary is trained as two unpaired samples.
    """

    def __init__(self, index: DatasetIndex, seed: int, batch_size: int, shuffle: bool = True, rank: int = 0,
                 world: int = 1, group_shapes: int = 8, shapes_per_batch: int = 0, drop_last: bool = True,
                 pairs: dict[int, int] | None = None, wrong_reference: float = 0.0,
                 kin: dict[str, list[str]] | None = None, wrong_from: int = 0):
        self.index, self.seed, self.batch_size, self.shuffle = index, seed, batch_size, shuffle
        self.pairs = pairs or {}
        self.wrong_reference, self.kin, self.wrong_from = wrong_reference, kin or {}, wrong_from
        if wrong_reference > 0 and not self.kin:
            raise InputError(None, "wrong_reference needs shapes with kin (another shape of their group) in the split")
        self.rank, self.world, self.group_shapes = rank, world, max(group_shapes, 1)
        self.shapes_per_batch, self.drop_last = shapes_per_batch, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        """The epoch's samples in order, before cutting into batches."""
        if not self.shuffle:
            return list(range(len(self.index)))
        rng = np.random.default_rng([self.seed, self.epoch])
        partner = {r: j for j, r in self.pairs.items() if j != r}  # a pair's anomalous member -> its twin
        by_shape: dict[str, list[tuple[int, ...]]] = {}  # shape -> its units: one query, or a pair
        for i, q in enumerate(self.index.queries):
            if i not in self.pairs:
                by_shape.setdefault(q.shape_id, []).append((i,))
            elif i in partner:
                by_shape.setdefault(q.shape_id, []).append((i, partner[i]))
        shapes = list(by_shape)
        rng.shuffle(shapes)
        units: list[tuple[int, ...]] = []
        block_size = max(self.group_shapes, self.shapes_per_batch)
        for k in range(0, len(shapes), block_size):
            block = shapes[k:k + block_size]
            if not self.shapes_per_batch:
                items = [u for s in block for u in by_shape[s]]
                units += [items[j] for j in rng.permutation(len(items))]
                continue
            rng.shuffle(block)
            for g in range(0, len(block), self.shapes_per_batch):
                lists = [[by_shape[s][j] for j in rng.permutation(len(by_shape[s]))] for s in block[g:g + self.shapes_per_batch]]
                units += [lst[r] for r in range(max(map(len, lists))) for lst in lists if r < len(lst)]
        return [i for u in units for i in u]

    def batches(self) -> list[list[tuple[int, int, int | None]]]:
        order = self.order()
        bs = self.batch_size
        cut = [order[k:k + bs] for k in range(0, len(order), bs)]
        if self.drop_last and cut and len(cut[-1]) < bs:
            cut.pop()
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        if self.shuffle:
            cut = [cut[j] for j in rng.permutation(len(cut))]
        if self.world > 1 and len(cut) % self.world:
            cut += cut[: self.world - len(cut) % self.world]  # pad like DistributedSampler
        mine = cut[self.rank::self.world]
        out = []
        for b, items in enumerate(mine):
            keyed = []
            for pos, i in enumerate(items):
                root = self.pairs.get(i)
                where = [b, pos] if root is None else [root, 2**31]  # a pair's members: one seed
                seed = int(np.random.default_rng([self.seed, self.epoch, self.rank, *where]).integers(2**62))
                view_seed = None
                if self.shapes_per_batch:
                    view_seed = stable_key(self.seed, self.epoch, self.rank, b, self.index.queries[i].shape_id) & (2**62 - 1)
                keyed.append((i, seed, view_seed, *self._wrong(i)))
            out.append(keyed)
        return out

    def _wrong(self, i: int) -> tuple[str, ...]:
        """(the kin whose views query ``i`` gets this epoch,) or () for its own reference."""
        q = self.index.queries[i]
        others = self.kin.get(q.shape_id)
        if not (self.wrong_reference > 0 and self.epoch >= self.wrong_from and others and q.label == 0 and i not in self.pairs):
            return ()
        if np.random.default_rng([self.seed, self.epoch, 0x5A, i]).random() >= self.wrong_reference:
            return ()
        pick = np.random.default_rng([self.seed, self.epoch, 0x5B, stable_key(q.shape_id) & (2**62 - 1)])
        return (others[int(pick.integers(len(others)))],)

    def __len__(self) -> int:
        n = len(self.index)
        count = -(-n // self.batch_size)
        if self.drop_last and n % self.batch_size:
            count -= 1
        return max(0, -(-count // self.world) - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int, int | None]]]:
        yield from self.batches()[self.start:]
