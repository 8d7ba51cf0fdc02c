"""A new classification loss fine-tuned from a softmax model: fresh or converted classifier start."""

import torch

from o365lib.modeling import build_detector
from o365lib.modeling.losses import build_class_loss
from o365lib.modeling.transfer import start_new_classifiers, transfer_weights

K = 5


def _softmax_state():
    torch.manual_seed(0)
    model = build_detector(K)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "cls_score" in name:
                p.normal_()
    return model.state_dict()


def test_sigmoid_rows_are_log_odds_against_background():
    weight, bias = torch.randn(K + 1, 7, dtype=torch.float64), torch.randn(K + 1, dtype=torch.float64)
    x = torch.randn(4, 7, dtype=torch.float64)
    softmax = torch.softmax(x @ weight.T + bias, dim=1)
    for name, extra in (("eqlv2", {}), ("federated", {"image_counts": [3.0] * K})):
        loss = build_class_loss(name, num_classes=K, **extra)
        w, b = loss.classifier_from_softmax(weight, bias)
        sigmoid = torch.sigmoid(x @ w.T + b)
        # independent statement: sigmoid(z_c - z_0) = p_c / (p_c + p_0)
        expected = softmax[:, 1:] / (softmax[:, 1:] + softmax[:, :1])
        torch.testing.assert_close(sigmoid[:, 1:], expected)
        assert torch.count_nonzero(w[0]) == 0 and b[0] == 0
    assert build_class_loss("seesaw", num_classes=K).classifier_from_softmax(weight, bias) is None
    same = build_class_loss("softmax", num_classes=K).classifier_from_softmax(weight, bias)
    assert torch.equal(same[0], weight) and same[0] is not weight


def test_start_new_classifiers_fresh_or_converted():
    state = _softmax_state()
    names = [n for n in state if n.endswith("cls_score.weight")]
    assert len(names) == 3
    for convert in (False, True):
        torch.manual_seed(1)
        target = build_detector(K, class_loss="eqlv2")
        fresh = {k: v.clone() for k, v in target.state_dict().items()}
        start = start_new_classifiers(target, state, convert=convert)
        transfer_weights(target, start)
        after = target.state_dict()
        for name in names:
            bias_name = name.replace(".weight", ".bias")
            if convert:
                torch.testing.assert_close(after[name][1:], state[name][1:] - state[name][:1])
                torch.testing.assert_close(after[bias_name][1:], state[bias_name][1:] - state[bias_name][:1])
            else:
                assert torch.equal(after[name], fresh[name]) and torch.equal(after[bias_name], fresh[bias_name])
        backbone = next(n for n in state if n.startswith("backbone.") and state[n].is_floating_point())
        assert torch.equal(after[backbone], state[backbone])


def test_seesaw_stays_fresh_even_when_converting():
    state = _softmax_state()
    torch.manual_seed(1)
    target = build_detector(K, class_loss="seesaw")
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    transfer_weights(target, start_new_classifiers(target, state, convert=True))
    for name in (n for n in fresh if "cls_score" in n):
        assert torch.equal(target.state_dict()[name], fresh[name])


def test_chapter_rows_follow_losses_and_starts():
    from types import SimpleNamespace

    from o365lib.book.studies import beyond
    from o365lib.modeling.losses import CLASS_LOSSES, CONVERTIBLE_LOSSES

    weight, bias = torch.randn(K + 1, 3), torch.randn(K + 1)
    for name in CLASS_LOSSES:
        if name == "softmax":
            continue
        extra = {"image_counts": [2.0] * K} if name == "federated" else {}
        converts = build_class_loss(name, num_classes=K, **extra).classifier_from_softmax(weight, bias) is not None
        assert converts == (name in CONVERTIBLE_LOSSES), name  # the flag says what the method does

    def rows(losses, starts):
        ctx = SimpleNamespace(cfg=SimpleNamespace(remedies=SimpleNamespace(losses=losses, classifier_starts=starts)))
        return beyond.trained_rows(ctx)

    both = rows(["seesaw", "eqlv2", "federated"], ["fresh", "converted"])
    assert list(both) == ["softmax CE", "RFS", "Seesaw", "Seesaw + RFS", "EQLv2", "EQLv2 (converted)",
                          "Federated", "Federated (converted)"]
    assert both["EQLv2 (converted)"] == ("uniform", "eqlv2", "converted")
    assert both["Seesaw"] == ("uniform", "seesaw", "fresh") and both["softmax CE"] == ("uniform", None, None)
    only = rows(["seesaw", "eqlv2"], ["converted"])
    assert list(only) == ["softmax CE", "RFS", "Seesaw", "Seesaw + RFS", "EQLv2 (converted)"]
    assert only["Seesaw"][2] == "fresh"  # no counterpart: fresh whatever the profile asks


def test_start_effects_pair_converted_with_fresh_by_seed():
    from o365lib.book.studies import beyond

    def seeds(*pairs):
        return [{"mAP": m, "ranges": {"301-365": {"mAP": t}}} for m, t in pairs]

    study = {"metrics": {"softmax CE": seeds((5, 1), (6, 1), (7, 1)),
                         "EQLv2": seeds((1, 0), (2, 0), (3, 1)),
                         "EQLv2 (converted)": seeds((4, 2), (5, 2), (6.5, 2)),
                         "Seesaw": seeds((1, 1), (1, 1), (1, 1))}}
    (label, overall), (tail_label, tail) = beyond.start_effects(study)
    assert label == "EQLv2 (converted): mAP" and tail_label == "EQLv2 (converted): AP ranks 301-365"
    assert overall.diffs == (3, 3, 3.5) and overall.ci_low > 0 and overall.verdict == "higher"
    assert tail.diffs == (2, 2, 1)
    assert beyond.start_effects({"metrics": {"EQLv2 (converted)": seeds((1, 1))}}) == []
