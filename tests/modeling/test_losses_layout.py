"""modeling/losses: base <- softmax, sigmoid <- the package; no import runs back (the old circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from o365lib.modeling import losses

ALLOWED = {"base": set(), "softmax": {"base"}, "sigmoid": {"base"}, "__init__": {"base", "softmax", "sigmoid"}}


def test_loss_modules_import_one_way():
    folder = Path(losses.__file__).parent
    for path in folder.glob("*.py"):
        imported = {node.module.rsplit(".", 1)[-1] for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("o365lib.modeling.")}
        assert imported <= ALLOWED[path.stem], f"{path.name} imports {imported - ALLOWED[path.stem]}"


def test_every_loss_name_builds():
    for name in losses.CLASS_LOSSES:
        options = {"image_counts": [3.0, 1.0]} if name == "federated" else {}
        assert isinstance(losses.build_class_loss(name, num_classes=2, **options), losses.ClassLoss)
