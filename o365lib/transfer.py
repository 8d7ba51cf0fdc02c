"""Initialising a detector from another one: same classes, a subset of classes, or backbone only.

The seed's pipeline is a chain of initialisations: ImageNet -> COCO -> Objects365, experts from
the full model, and the tiny track (65 classes) from the full-track (365 classes) model, which
gave +4.2 mAP. ``transfer_weights`` does all of them on a state dict:

- tensors whose name and shape match are copied;
- classifier tensors (``*.cls_score.weight`` / ``.bias``, rows = background + one per label) are
  remapped **by category id** when both label maps are given: the row of category ``c`` in the
  target takes the source's row of ``c`` (background row 0 to row 0), and target categories the
  source never saw keep their fresh initialisation;
- everything else (other shapes, missing names) is left as initialised and reported.

``prefixes`` restricts the copy to parts of the model, e.g. ``("backbone.",)`` for a backbone
pretrained elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from o365lib.modeling.weights import read_state_dict

CLASSIFIER_SUFFIXES = ("cls_score.weight", "cls_score.bias")


def _row_index(source_label_map, target_label_map) -> tuple[list[int], list[int]]:
    """Rows (target, source) of the categories both label maps know, background included."""
    target_rows, source_rows = [0], [0]
    source_ids = set(source_label_map.category_ids)
    for cat_id in target_label_map.category_ids:
        if cat_id in source_ids:
            target_rows.append(target_label_map.to_label(cat_id))
            source_rows.append(source_label_map.to_label(cat_id))
    return target_rows, source_rows


def transfer_weights(model: nn.Module, source: str | Path | dict, *, source_label_map=None,
                     target_label_map=None, prefixes: tuple[str, ...] = ()) -> dict:
    """Copy what fits from ``source`` (a file or a state dict) into ``model``; returns a report.

    The report counts ``copied`` tensors, lists ``remapped`` classifier tensors with the number of
    categories carried over, and ``skipped`` names (absent in the source or of another shape).
    Raises ``ValueError`` when nothing at all could be copied: that is always a wrong file.
    """
    state = read_state_dict(Path(source)) if not isinstance(source, dict) else source
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    rows = None
    if source_label_map is not None and target_label_map is not None:
        rows = _row_index(source_label_map, target_label_map)
    own = model.state_dict()
    copied, remapped, skipped = 0, {}, []
    with torch.no_grad():
        for name, tensor in own.items():
            if prefixes and not name.startswith(prefixes):
                continue
            src = state.get(name)
            if src is None:
                skipped.append(name)
            elif src.shape == tensor.shape and (rows is None or not name.endswith(CLASSIFIER_SUFFIXES)):
                tensor.copy_(src)
                copied += 1
            elif rows is not None and name.endswith(CLASSIFIER_SUFFIXES) and src.shape[1:] == tensor.shape[1:]:
                target_rows, source_rows = rows
                tensor[target_rows] = src[source_rows].to(tensor.dtype)
                remapped[name] = len(target_rows) - 1
                copied += 1
            else:
                skipped.append(name)
    if copied == 0:
        where = source if not isinstance(source, dict) else "the given state dict"
        raise ValueError(f"no tensor of {where} fits this model (prefixes={prefixes or 'all'})")
    model.load_state_dict(own)
    return {"copied": copied, "remapped": remapped, "skipped": skipped}
