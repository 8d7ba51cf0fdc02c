"""Runtime dependencies: what the library imports is what ``pyproject.toml`` installs at run time."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import o365lib

ROOT = Path(o365lib.__file__).resolve().parents[1]
#: Test-only packages: the library must never import them (the tests and benchmarks may).
TEST_ONLY = ("pycocotools", "pytest", "ensemble_boxes", "mmdet", "mmengine", "mmcv")


def _imported_top_level_names() -> dict[str, str]:
    names = {}
    for path in (ROOT / "o365lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update({alias.name.split(".")[0]: str(path) for alias in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names[node.module.split(".")[0]] = str(path)
    return names


def test_the_library_imports_no_test_only_package():
    imported = _imported_top_level_names()
    wrong = {name: imported[name] for name in TEST_ONLY if name in imported}
    assert not wrong, f"runtime modules import test-only packages: {wrong}"


def test_pycocotools_is_a_test_dependency_only():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    runtime = re.search(r"^dependencies = \[(.*?)^\]", text, re.DOTALL | re.MULTILINE).group(1)
    test = re.search(r"^test = \[(.*?)\]", text, re.DOTALL | re.MULTILINE).group(1)
    assert "pycocotools" not in runtime and '"pycocotools"' in test
