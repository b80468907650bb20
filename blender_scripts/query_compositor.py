"""The compositor of query renders: the render over its background in linear light, then OIDN.

Cycles renders with a transparent film; the compositor puts the (premultiplied, linear) render
over a background -- white, or the ground pass's pixels for the object's rectangle -- and only
then runs OpenImageDenoise on the composite, guided by the albedo (over white) and normal passes.
Denoising the transparent render first and compositing afterwards (what Cycles' own denoiser
does) leaves the un-denoised alpha's noise on every silhouette pixel; compositing in sRGB instead
of linear light darkens anti-aliased edges. The composite is the render result, so the PNG that
``scene.render_rgba`` reads is the final RGB (alpha 1).

With a coverage (``set_coverage``: the exact filtered silhouette coverage of ``generation.render.coverage``)
the render's noisy alpha is replaced by it, in the colour (the render un-premultiplied, then
weighted by the coverage) and in the albedo guide, wherever a sample hit the object; so OIDN gets
silhouettes without coverage noise in both.
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
        albedo = nodes.new("CompositorNodeSetAlpha")  # the albedo pass is premultiplied by coverage
        albedo.inputs["Type"].default_value = "Replace Alpha"
        link(layers.outputs["Denoising Albedo"], albedo.inputs["Image"])
        link(layers.outputs["Alpha"], albedo.inputs["Alpha"])
        self.albedo_over = albedo_over = nodes.new("CompositorNodeAlphaOver")
        albedo_over.inputs["Background"].default_value = WHITE
        # With a coverage: cov_eff = coverage where a sample hit the object (else nothing to colour)
        self.coverage = nodes.new("CompositorNodeImage")
        hit = nodes.new("ShaderNodeMath")
        hit.operation = "GREATER_THAN"
        hit.inputs[1].default_value = 0.0
        link(layers.outputs["Alpha"], hit.inputs[0])
        self.cov_eff = nodes.new("ShaderNodeMath")
        self.cov_eff.operation = "MULTIPLY"
        link(hit.outputs[0], self.cov_eff.inputs[0])
        link(self.coverage.outputs["Image"], self.cov_eff.inputs[1])
        # ... the colour and the albedo un-premultiplied, given cov_eff as their (straight) alpha
        self.direct = {"Foreground": layers.outputs["Image"], "Albedo": albedo.outputs["Image"]}
        self.recovered = {"Foreground": self._realpha(layers.outputs["Image"]), "Albedo": self._realpha(albedo.outputs["Image"])}
        self.set_coverage(None)
        self.denoiser = nodes.new("CompositorNodeDenoise")
        self.denoiser.inputs["Prefilter"].default_value = prefilter.capitalize()
        self.denoiser.inputs["Quality"].default_value = quality.capitalize()
        link(self.over.outputs["Image"], self.denoiser.inputs["Image"])
        link(albedo_over.outputs["Image"], self.denoiser.inputs["Albedo"])
        link(layers.outputs["Denoising Normal"], self.denoiser.inputs["Normal"])
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        link(self.denoiser.outputs["Image"], nodes.new("NodeGroupOutput").inputs[0])
        self.image = nodes.new("CompositorNodeImage")  # the background image, linked when set

    def _realpha(self, premultiplied: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
        straight = self.tree.nodes.new("CompositorNodePremulKey")
        straight.inputs["Type"].default_value = "To Straight"
        self.tree.links.new(premultiplied, straight.inputs["Image"])
        out = self.tree.nodes.new("CompositorNodeSetAlpha")
        out.inputs["Type"].default_value = "Replace Alpha"
        self.tree.links.new(straight.outputs["Image"], out.inputs["Image"])
        self.tree.links.new(self.cov_eff.outputs[0], out.inputs["Alpha"])
        return out.outputs["Image"]

    def set_coverage(self, coverage: np.ndarray | None) -> None:
        """``None``: the render's own alpha. Else an (h, w) coverage in [0, 1], top row first, the
        size of the render, in place of it (module docstring)."""
        on = coverage is not None
        if on:
            _set_pixels(self.coverage, "brokenchairs_coverage", np.repeat(coverage[..., None], 3, -1))
        sources = self.recovered if on else self.direct
        self.tree.links.new(sources["Foreground"], self.over.inputs["Foreground"])
        self.tree.links.new(sources["Albedo"], self.albedo_over.inputs["Foreground"])
        self.over.inputs["Straight Alpha"].default_value = on
        self.albedo_over.inputs["Straight Alpha"].default_value = on

    def set_denoise(self, on: bool) -> None:
        self.denoiser.mute = not on

    def set_background(self, linear: np.ndarray | None) -> None:
        """``None``: white. Else an (h, w, 3) linear-light array, top row first, the size of the render."""
        for lk in list(self.over.inputs["Background"].links):
            self.tree.links.remove(lk)
        if linear is None:
            return
        _set_pixels(self.image, "brokenchairs_background", linear)
        self.tree.links.new(self.image.outputs["Image"], self.over.inputs["Background"])


def _set_pixels(node: bpy.types.Node, name: str, linear: np.ndarray) -> None:
    """Make ``node``'s image an (h, w, 3) float array (top row first), alpha 1."""
    h, w = linear.shape[:2]
    img = node.image
    if img is None:
        img = node.image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    elif tuple(img.size) != (w, h):
        img.scale(w, h)
    px = np.ones((h, w, 4), np.float32)
    px[..., :3] = linear[::-1]  # Blender images are bottom-up
    img.pixels.foreach_set(px.ravel())
    img.update()
