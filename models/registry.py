"""The models of Table 2 as specs: what each consumes and which overrides it accepts.

Plain data, no torch: the CLI lists models from here at start-up. ``build_model`` (in
``models/__init__``) turns a spec plus overrides into a module and refuses an override the spec
does not accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# overrides shared by every ResNet18-FPN-encoder model of the CMT family
_ENCODER = ("d", "encoder_head", "backbone_weights", "box_head", "box_layers", "box_l1_weight", "box_giou_weight",
            "cell_weight")
READOUTS = ("token", "token+pool")  # what the heads read: [tok] after the decoder (paper), or + the query's foreground mean
_DECODER = ("heads", "head_dim", "blocks", "ff_mult", "readout")
_VLFA = ("momentum", "tau", "vlfa_weight", "vlfa_scale", "vlfa_points", "proj_hidden", "proj_dim", "vlfa_query_labels", "vlfa_losses")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str  # as in the paper's Table 2
    family: str  # "cmt" (models.cmt.CMT), "vit", "retrieval", "lfd"
    switches: dict = field(default_factory=dict)  # fixed constructor arguments that define the row
    accepts: tuple[str, ...] = ()  # overrides a user may set
    views: bool = False  # consumes reference views (+ patch xyz)
    vlfa: bool = False  # consumes view depth and cameras (VLFA's view-view loss)
    boxes: bool = False  # can predict a box
    query_xyz: bool = False  # trains on the query's true location field (its depth and camera)

    @property
    def uses_views(self) -> bool:
        return self.views


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("resnet18-fpn", "ResNet18-FPN", "cmt", {"views": False, "self_attention": False}, _ENCODER, boxes=True),
    ModelSpec("resnet18-fpn-sa", "ResNet18-FPN w/ SA blocks", "cmt", {"views": False, "self_attention": True},
              _ENCODER + _DECODER, boxes=True),
    ModelSpec("vit", "Vision Transformer (ViT)", "vit", {}, ("image_size", "patch", "layers", "heads", "width")),
    ModelSpec("lfd", "LFD (location field descriptors)", "lfd", {},
              ("d", "embed", "margin", "encoder_head", "backbone_weights"), views=True, query_xyz=True),
    ModelSpec("retrieval", "Retrieval (global embeddings, after Lin et al.)", "retrieval", {},
              ("d", "embed", "margin", "backbone_weights"), views=True),
    ModelSpec("cmt-a", "A: CMT (w/o CGA, VLFA, 3DPE)", "cmt", {"topk": None, "vlfa": False, "pe3d": False},
              _ENCODER + _DECODER, views=True, boxes=True),
    ModelSpec("cmt-b", "B: CMT (w/o VLFA, 3DPE)", "cmt", {"vlfa": False, "pe3d": False},
              _ENCODER + _DECODER + ("topk", "proj_hidden", "proj_dim"), views=True, boxes=True),
    ModelSpec("cmt-c", "C: CMT (w/o CGA, 3DPE)", "cmt", {"topk": None, "vlfa": True, "pe3d": False},
              _ENCODER + _DECODER + _VLFA, views=True, vlfa=True, boxes=True),
    ModelSpec("cmt-d", "D: CMT (w/o 3DPE)", "cmt", {"vlfa": True, "pe3d": False},
              _ENCODER + _DECODER + _VLFA + ("topk",), views=True, vlfa=True, boxes=True),
    ModelSpec("cmt", "CMT", "cmt", {"vlfa": True, "pe3d": True},
              _ENCODER + _DECODER + _VLFA + ("topk",), views=True, vlfa=True, boxes=True),
)
REGISTRY: dict[str, ModelSpec] = {s.name: s for s in SPECS}
MODEL_NAMES: tuple[str, ...] = tuple(REGISTRY)


def spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return REGISTRY[name]
