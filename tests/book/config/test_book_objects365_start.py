"""The objects365 profile starts from mmdet's COCO model exactly: same predictions as load_mmdet_checkpoint."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from o365lib.book.artefacts.models import detector_kwargs
from o365lib.book.config.profiles import load_profile
from o365lib.modeling import COCO80_NAMES, build_detector, load_mmdet_checkpoint
from o365lib.modeling.mmdet_checkpoint import save_mmdet_checkpoint
from o365lib.modeling.transfer import init_detector_weights

SMALL = {"model__min_size": 96, "model__max_size": 128, "model__backbone_weights": None, "model__weights": None}


def _randomised(model):
    """Random weights whose class scores spread (no saturation, some boxes above any threshold)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_var",)):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    return model


def test_the_objects365_profile_predicts_what_mmdets_coco_model_predicts(root, tmp_path):
    cfg = load_profile("objects365", root=root, overrides=SMALL)
    kwargs = detector_kwargs(SimpleNamespace(cfg=cfg), backbone_weights=None, score_thresh=0.0)
    assert kwargs["preset"] == "mmdet"
    torch.manual_seed(0)
    coco = _randomised(build_detector(80, **{**kwargs, "score_thresh": 0.05}).eval())
    path = save_mmdet_checkpoint(coco, tmp_path / "coco_mmdet.pth", class_names=list(COCO80_NAMES))

    reference = load_mmdet_checkpoint(path, min_size=96, max_size=128, score_thresh=0.0)
    torch.manual_seed(1)
    ours = build_detector(80, **kwargs)  # what the profile builds for a model that starts from model.weights
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(COCO80_NAMES)]
    init_detector_weights(ours, path, target_categories=categories)
    ours.eval()

    image = torch.rand(3, 96, 120, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, got = reference([image])[0], ours([image])[0]
    assert len(expected["boxes"]) > 0
    torch.testing.assert_close(got["boxes"], expected["boxes"])
    torch.testing.assert_close(got["scores"], expected["scores"])
    assert torch.equal(got["labels"], expected["labels"])
