"""o365lib.modeling.transfer: copying weights between detectors, classifier rows mapped by category id."""

import pytest
import torch

from o365lib.data import LabelMap
from o365lib.modeling import build_detector
from o365lib.modeling.transfer import transfer_weights


def _tiny(num_classes):
    torch.manual_seed(num_classes)
    return build_detector(num_classes, backbone="tiny", min_size=64, max_size=64)


def test_same_classes_copies_everything():
    source, target = _tiny(5), _tiny(5)
    report = transfer_weights(target, source.state_dict())
    assert report["skipped"] == []
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name


def test_subset_classifier_rows_follow_category_ids():
    full_ids = [3, 7, 11, 20, 42]  # labels 1..5
    tiny_ids = [42, 7]  # labels: 7 -> 1, 42 -> 2
    source, target = _tiny(len(full_ids)), _tiny(len(tiny_ids))
    report = transfer_weights(target, source.state_dict(), source_label_map=LabelMap(full_ids),
                              target_label_map=LabelMap(tiny_ids))
    src, dst = source.state_dict(), target.state_dict()
    cls_names = [n for n in dst if n.endswith("cls_score.weight")]
    assert len(cls_names) == 3  # one classifier per cascade stage
    for name in cls_names:
        assert report["remapped"][name] == 2
        assert torch.equal(dst[name][0], src[name][0])  # background
        assert torch.equal(dst[name][1], src[name][2])  # category 7: full label 2
        assert torch.equal(dst[name][2], src[name][5])  # category 42: full label 5
    backbone = next(n for n in dst if n.startswith("backbone."))
    assert torch.equal(dst[backbone], src[backbone])


def test_unseen_category_keeps_its_initialisation():
    source, target = _tiny(2), _tiny(3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    transfer_weights(target, source.state_dict(), source_label_map=LabelMap([1, 2]),
                     target_label_map=LabelMap([1, 2, 99]))
    name = next(n for n in before if n.endswith("cls_score.bias"))
    assert torch.equal(target.state_dict()[name][3], before[name][3])
    assert torch.equal(target.state_dict()[name][:3], source.state_dict()[name])


def test_prefixes_limit_the_copy():
    source, target = _tiny(4), _tiny(4)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    transfer_weights(target, source.state_dict(), prefixes=("backbone.body.",))
    for name, tensor in target.state_dict().items():
        expected = source.state_dict()[name] if name.startswith("backbone.body.") else before[name]
        assert torch.equal(tensor, expected), name


def test_nothing_fits_is_an_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"unrelated.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="other.pt"):
        transfer_weights(_tiny(2), path)
