"""The book layer's layout: every module reachable lazily, and imports that run one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import o365lib.book

BOOK = Path(o365lib.book.__file__).parent
#: Floors from the bottom: a sub-package may import only from its own floor or those below.
FLOORS = ("config", "artefacts", "run", "present", "studies")
ORDER = {name: floor for floor, name in enumerate(FLOORS)}


def _book_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("o365lib.book."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.module == "o365lib.book":
            names.update(alias.name for alias in node.names if alias.name in FLOORS)
    return names


@pytest.mark.parametrize("sub", FLOORS)
def test_every_module_of_a_subpackage_loads_lazily(sub):
    package = getattr(o365lib.book, sub)  # AttributeError here was the old _LAZY bug
    files = {p.stem for p in (BOOK / sub).glob("*.py") if p.stem != "__init__"}
    assert set(package.MODULES) == files
    for name in package.MODULES:
        assert getattr(package, name).__name__ == f"o365lib.book.{sub}.{name}"


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        o365lib.book.no_such_module  # noqa: B018


@pytest.mark.parametrize("sub", FLOORS)
def test_imports_run_one_way(sub):
    for path in (BOOK / sub).glob("*.py"):
        for target in _book_imports(path) - {sub}:
            assert ORDER[target] < ORDER[sub], f"{path.relative_to(BOOK)} imports o365lib.book.{target} (above it)"
