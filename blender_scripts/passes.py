"""Render passes (depth, object index) read back as numpy arrays.

bpy 5.0 gives no Python access to render-result passes and the Viewer node does not run in
background renders, so the compositor's File Output node writes each pass as an uncompressed
32-bit single-channel EXR into a private folder in memory (``scene.scratch_dir``: /dev/shm where
there is one; on disk, creating and unlinking the files cost ~2.5 ms a pass), read back with numpy
(``generation.render.exr``; ``bpy.data.images.load`` took ~2.5 ms a file). Arrays are top-down (row 0 =
top of the image, as in OpenCV), as EXR stores them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np

from brokenchairs.blender_scripts.scene import scratch_dir
from brokenchairs.generation.render.exr import read_exr

# Blender writes this value where no surface was hit (Workbench and Cycles).
BLENDER_BACKGROUND_DEPTH = 1e9

PASS_SOCKETS = {"depth": "Depth", "index": "Object Index", "image": "Image", "alpha": "Alpha"}


class PassReader:
    """Configure the compositor once; after each ``bpy.ops.render.render`` call ``read()``.

    Each pass has its own File Output node, so a render can write only the passes it needs
    (``select``): a masks-only render skips the depth file, a ground pass writes none."""

    def __init__(self, passes: tuple[str, ...] = ("depth",)):
        scene = bpy.context.scene
        layer = scene.view_layers[0]
        layer.use_pass_z = "depth" in passes
        layer.use_pass_object_index = "index" in passes
        scene.render.use_compositing = True
        tree = bpy.data.node_groups.new("brokenchairs_passes", "CompositorNodeTree")
        scene.compositing_node_group = tree
        layers = tree.nodes.new("CompositorNodeRLayers")
        self.tree, self.layers = tree, layers  # others may add to the compositor (query_compositor)
        self.dir = Path(tempfile.mkdtemp(prefix="brokenchairs-passes-", dir=scratch_dir()))
        atexit.register(self.close)  # the folder goes with the process (it is empty between renders)
        self.passes = passes
        self.outputs = {}
        for name in passes:
            out = tree.nodes.new("CompositorNodeOutputFile")
            fmt = out.format
            fmt.media_type = "IMAGE"
            fmt.file_format = "OPEN_EXR"
            fmt.color_depth = "32"
            fmt.exr_codec = "NONE"
            fmt.color_mode = "BW"  # one channel, "V"
            out.directory = str(self.dir)
            out.file_name = ""
            out.file_output_items.new("FLOAT", name)
            socket = next(s for s in layers.outputs if s.name == PASS_SOCKETS[name])
            tree.links.new(socket, out.inputs[name])
            self.outputs[name] = out
        self.selected = passes

    def select(self, names: tuple[str, ...]) -> None:
        """Write only these passes on the next renders (others' File Output nodes are muted)."""
        unknown = set(names) - set(self.passes)
        if unknown:
            raise ValueError(f"passes {sorted(unknown)} were not configured (have {self.passes})")
        for name, node in self.outputs.items():
            node.mute = name not in names
        self.selected = tuple(names)

    def read(self) -> dict[str, np.ndarray]:
        """The selected passes of the last render as (H, W) float32 arrays, top row first."""
        result = {}
        for name in self.selected:
            path = self.dir / f"{name}.exr"
            if not path.is_file():
                raise RuntimeError(f"Blender did not write the {name} pass ({path})")
            try:
                channels = read_exr(path)
            finally:
                path.unlink()
            if set(channels) != {"V"}:
                raise RuntimeError(f"{path}: channels {sorted(channels)}, expected one (V)")
            result[name] = channels["V"].astype(np.float32, copy=False)
        return result

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def clean_depth(depth: np.ndarray) -> np.ndarray:
    """Blender's background value -> 0, as the shard contract says."""
    out = depth.astype(np.float32, copy=True)
    out[~(out < BLENDER_BACKGROUND_DEPTH)] = 0.0
    return out
