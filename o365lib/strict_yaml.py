"""Strict YAML reading: the one loader for every parameter file, refusing duplicated keys.

Plain YAML loaders keep the last of two equal keys in a mapping without a word, so a second
``lr: 5.0`` further down a long ``train:`` section silently wins. :class:`StrictLoader` is a
``yaml.SafeLoader`` that walks the document before building it and raises one
:class:`DuplicateKeyError` listing every duplicated key, at any depth, with its file, line and
section. Keys are compared as the values YAML makes of them (``1`` and ``1.0``, or ``yes`` and
``true``, are the same key). Keys brought in by a merge (``<<: *defaults``) may be overridden, as
YAML intends. Usage::

    mapping = read_yaml_mapping("parameters/profiles/smoke.yaml")
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

__all__ = ["DuplicateKeyError", "StrictLoader", "load_yaml", "read_yaml_mapping"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ValueError):
    """A YAML mapping holds the same key twice. ``duplicates`` are ``(line, section, key, first_line)``."""

    def __init__(self, source: str, duplicates: list[tuple[int, str, object, int]]) -> None:
        self.source = source
        self.duplicates = duplicates
        lines = [f"{source}, line {line}: duplicate key {key!r} in {section} (first given at line {first}); "
                 f"YAML would silently keep the last one" for line, section, key, first in duplicates]
        super().__init__("\n".join(lines))


class StrictLoader(yaml.SafeLoader):
    """A ``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a key given twice in one mapping."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        duplicates: list[tuple[int, str, object, int]] = []
        self._find_duplicates(node, section=(), seen=set(), found=duplicates)
        if duplicates:
            raise DuplicateKeyError(str(self.name), duplicates)
        return self.construct_document(node)

    def _find_duplicates(self, node: yaml.Node, *, section: tuple, seen: set, found: list) -> None:
        if id(node) in seen:  # an alias repeats a node (or a recursive structure): walk it once
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._find_duplicates(item, section=(*section, index), seen=seen, found=found)
        if not isinstance(node, yaml.MappingNode):
            return
        first_line: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._find_duplicates(value_node, section=section, seen=seen, found=found)
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader itself refuses it with a clear message
                continue
            line = key_node.start_mark.line + 1
            if earlier is not None:
                where = "section " + repr(".".join(str(part) for part in section)) if section else "the top level"
                found.append((line, where, key, earlier))
            else:
                first_line[key] = line
            self._find_duplicates(value_node, section=(*section, key), seen=seen, found=found)


def load_yaml(text: str, *, source: str = "<string>"):
    """The YAML document in ``text``, read by :class:`StrictLoader`; errors name ``source``."""
    loader = StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | os.PathLike) -> dict:
    """A YAML mapping from a file (an empty file gives ``{}``).

    Raises:
        DuplicateKeyError: a key is given twice in one mapping (file, line, section, key).
        ValueError: the file is not valid YAML, or its top level is not a mapping (naming the file).
    """
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf8"), source=str(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")  # noqa: TRY004
    return data
