"""The compositor of query renders: the render over its background in linear light, then OIDN.

Cycles renders with a transparent film; the compositor puts the (premultiplied, linear) render
over a background -- white, or the ground pass's pixels for the object's rectangle -- and only
then runs OpenImageDenoise on the composite, guided by the albedo (over white) and normal passes.
Denoising the transparent render first and compositing afterwards (what Cycles' own denoiser
does) leaves the un-denoised alpha's noise on every silhouette pixel; compositing in sRGB instead
of linear light darkens anti-aliased edges. The composite is the render result, so the PNG that
``scene.render_rgba`` reads is the final RGB (alpha 1).
"""

from __future__ import annotations

import bpy
import numpy as np

WHITE = (1.0, 1.0, 1.0, 1.0)


class QueryCompositor:
    def __init__(self, tree: bpy.types.NodeTree, layers: bpy.types.Node, prefilter: str = "FAST",
                 quality: str = "FAST"):
        bpy.context.scene.view_layers[0].cycles.denoising_store_passes = True  # albedo + normal guides
        self.tree = tree
        nodes, link = tree.nodes, tree.links.new
        self.over = nodes.new("CompositorNodeAlphaOver")
        self.over.inputs["Background"].default_value = WHITE
        link(layers.outputs["Image"], self.over.inputs["Foreground"])
        albedo = nodes.new("CompositorNodeSetAlpha")  # the albedo pass is premultiplied by coverage
        albedo.inputs["Type"].default_value = "Replace Alpha"
        link(layers.outputs["Denoising Albedo"], albedo.inputs["Image"])
        link(layers.outputs["Alpha"], albedo.inputs["Alpha"])
        albedo_over = nodes.new("CompositorNodeAlphaOver")
        albedo_over.inputs["Background"].default_value = WHITE
        link(albedo.outputs["Image"], albedo_over.inputs["Foreground"])
        self.denoiser = nodes.new("CompositorNodeDenoise")
        self.denoiser.inputs["Prefilter"].default_value = prefilter.capitalize()
        self.denoiser.inputs["Quality"].default_value = quality.capitalize()
        link(self.over.outputs["Image"], self.denoiser.inputs["Image"])
        link(albedo_over.outputs["Image"], self.denoiser.inputs["Albedo"])
        link(layers.outputs["Denoising Normal"], self.denoiser.inputs["Normal"])
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        link(self.denoiser.outputs["Image"], nodes.new("NodeGroupOutput").inputs[0])
        self.image = nodes.new("CompositorNodeImage")  # the background image, linked when set

    def set_denoise(self, on: bool) -> None:
        self.denoiser.mute = not on

    def set_background(self, linear: np.ndarray | None) -> None:
        """``None``: white. Else an (h, w, 3) linear-light array, top row first, the size of the render."""
        for lk in list(self.over.inputs["Background"].links):
            self.tree.links.remove(lk)
        if linear is None:
            return
        h, w = linear.shape[:2]
        img = self.image.image
        if img is None:
            img = self.image.image = bpy.data.images.new("brokenchairs_background", w, h, alpha=True, float_buffer=True)
        elif tuple(img.size) != (w, h):
            img.scale(w, h)
        px = np.ones((h, w, 4), np.float32)
        px[..., :3] = linear[::-1]  # Blender images are bottom-up
        img.pixels.foreach_set(px.ravel())
        img.update()
        self.tree.links.new(self.image.outputs["Image"], self.over.inputs["Background"])
