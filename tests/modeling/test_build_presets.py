"""build_detector after its split into preset dataclasses + assembler builds the models it built before.

The golden digests below were computed with the code before the split (commit 7973d32, torch 2.11
on CPU): for each call, one digest of the structure (module types and names, every plain
attribute of every module, state-dict names, shapes and dtypes) and one of the initial values
under ``torch.manual_seed(0)``. The structure digest is independent of torch's initialisers; the
value digest would have to be recomputed (from that commit) if a torch release changed them.
The box head's type is read as its torchvision base (``SAME_AS``): ``cascade.StageHead`` (2026-12-06)
only overrides ``forward``; its attributes and parameters are ``TwoMLPHead``'s.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import torch

from o365lib.book.artefacts.keys import key_of
from o365lib.modeling.build import PRESETS, build_detector

#: Calls covering each preset, the derived defaults (norm, trainable stages, max size, anchors) and
#: every kind of override (a truthy one, a 0 that counts, a 0 that keeps the preset's value).
CALLS = {
    "tiny": {"num_classes": 5},
    "tiny-overrides": {
        "num_classes": 7, "fpn_channels": 32, "min_size": (64, 96), "max_size": 0, "dcn": True,
        "anchor_sizes": ((8,), (16,), (32,), (64,), (128,)),
        "rpn_pre_nms_top_n": (10, 20), "rpn_post_nms_top_n": (5, 6), "rpn_batch_size_per_image": 0,
        "box_batch_size_per_image": 32, "box_positive_fraction": 0.0, "representation_size": 64,
        "roi_sampling_ratio": 0, "max_candidates": 7, "stage_score_average": "logits", "class_loss": "seesaw",
        "score_thresh": 0.1, "nms_thresh": 0.6, "detections_per_img": 50, "norm": "gn", "trainable_layers": 2,
    },
    "resnet": {"num_classes": 3, "backbone": "resnet18", "min_size": 512},
    "resnet-large": {"num_classes": 3, "backbone": "resnet18", "fpn_channels": 16, "min_size": (1000, 1200),
                     "representation_size": 32},
    "mmdet": {"num_classes": 4, "backbone": "resnet18", "preset": "mmdet", "fpn_channels": 16,
              "representation_size": 32},
}

GOLDEN = {
    "tiny": ("96132f9856620e6f", "582a979e1f43eb7e"),
    "tiny-overrides": ("68eb4afae527a45e", "45434eea0dcb70b3"),
    "resnet": ("fc3366be113a49b0", "9aeed8818791fa59"),
    "resnet-large": ("6c84153ae0ff6992", "1beb2e9929fe34a7"),
    "mmdet": ("411f5ad83c3e643f", "efb0cdb8fb72da59"),
}

#: ``key_of(PRESETS[name])`` before the split: model cache keys hash it, so it must not move.
PRESET_KEYS = {"tiny": "126eb14747", "resnet": "243b8e1a5b", "mmdet": "03a53740d5"}


#: subclasses that only override ``forward``, digested under the name of the class they replaced
SAME_AS = {"StageHead": "TwoMLPHead"}


def _type_name(value) -> str:
    return SAME_AS.get(type(value).__name__, type(value).__name__)


def _describe(value, depth: int = 0) -> str:
    """A stable text for a module attribute: plain values as repr, objects by their attributes."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}{value.dtype}:{value.detach().cpu().flatten()[:8].tolist()}"
    if isinstance(value, torch.nn.Module):
        return _type_name(value)  # described on its own by named_modules
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_describe(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=str)
        return "{" + ",".join(f"{k!r}:{_describe(v, depth + 1)}" for k, v in items) + "}"
    if hasattr(value, "__dict__") and depth < 3 and not callable(value):
        return type(value).__name__ + _describe(vars(value), depth + 1)
    return type(value).__name__


def summary(model: torch.nn.Module) -> tuple[str, str]:
    """(structure digest, initial-values digest) of a model."""
    structure, values = hashlib.sha256(), hashlib.sha256()
    for name, module in model.named_modules():
        plain = {k: v for k, v in vars(module).items() if k not in ("_parameters", "_buffers", "_modules")
                 and not k.startswith(("_forward", "_backward", "_state_dict", "_load_state_dict"))}
        structure.update(f"{name}:{_type_name(module)}:{_describe(plain)}\n".encode())
    for name, tensor in model.state_dict().items():
        structure.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tensor.requires_grad}\n".encode())
        values.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for name, parameter in model.named_parameters():
        structure.update(f"{name}:trainable={parameter.requires_grad}\n".encode())
    return structure.hexdigest()[:16], values.hexdigest()[:16]


def build_summary(name: str) -> tuple[str, str]:
    torch.manual_seed(0)
    return summary(build_detector(**CALLS[name]))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_preset_builds_the_model_it_built_before_the_split(name):
    assert build_summary(name) == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(PRESET_KEYS))
def test_preset_values_hash_as_before(name):
    assert key_of(PRESETS[name]) == PRESET_KEYS[name]


def test_presets_is_a_read_only_view_of_the_dataclasses(monkeypatch):
    from o365lib.modeling.presets import PRESET_CONFIGS, TinyPreset

    with pytest.raises(TypeError):
        PRESETS["tiny"] = {}  # the dataclasses are the one owner
    PRESETS["tiny"]["fpn_channels"] = 1  # a copy: changes nothing
    assert PRESETS["tiny"]["fpn_channels"] == TinyPreset().fpn_channels == 64
    monkeypatch.setitem(PRESET_CONFIGS, "tiny", replace(PRESET_CONFIGS["tiny"], fpn_channels=8))
    assert PRESETS["tiny"]["fpn_channels"] == 8
    assert build_detector(3).config["fpn_channels"] == 8  # what the key hashes is what is built


def test_a_zero_override_keeps_the_preset_value_where_zero_is_no_setting():
    model = build_detector(3, rpn_batch_size_per_image=0, box_positive_fraction=0.0, roi_sampling_ratio=0)
    assert model.rpn.fg_bg_sampler.batch_size_per_image == 128  # the tiny preset's
    assert model.roi_heads.stages[0].fg_bg_sampler.positive_fraction == 0.0  # 0 is a value here
