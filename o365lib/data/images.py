"""Checking image files against the JSON: that they exist, that they open, that their size matches.

Three costs, three functions:

- :func:`missing_files`: existence only. It lists each folder once with ``os.scandir`` (one
  directory read per folder instead of one ``stat`` per file), so 600k files take seconds.
- :func:`header_size`: opens the file with PIL and reads the header only (no pixel decoding),
  for the ``(width, height)`` check of every image.
- :func:`decoded_size`: decodes the pixels, which also finds truncated or corrupt files.

:func:`size_problem` words a width/height mismatch the way every check reports it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

__all__ = ["decoded_size", "header_size", "missing_files", "size_problem"]


def missing_files(root: str | Path, names: Iterable[str]) -> list[str]:
    """The ``names`` (paths relative to ``root``) that are not files, in input order.

    Names are grouped by folder and each folder is listed once; a missing folder makes all its
    names missing. Symbolic links count when they point to a file.
    """
    names = list(names)
    by_folder: dict[str, list[int]] = defaultdict(list)
    bases: list[str] = []
    for index, name in enumerate(names):
        folder, base = os.path.split(os.path.join(root, name))
        by_folder[folder].append(index)
        bases.append(base)
    missing_index: list[int] = []
    for folder, indices in by_folder.items():
        try:
            with os.scandir(folder) as entries:
                present = {entry.name for entry in entries if entry.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing_index.extend(i for i in indices if bases[i] not in present)
    return [names[i] for i in sorted(missing_index)]


def header_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` read from the file's header (no decoding). Raises OSError on a bad file."""
    with Image.open(path) as image:
        return int(image.width), int(image.height)


def decoded_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` after decoding every pixel. Raises OSError on a truncated / corrupt file."""
    with Image.open(path) as image:
        image.load()
        return int(image.width), int(image.height)


def size_problem(record: dict, actual: tuple[int, int], *, file: str | Path) -> str | None:
    """A message when the file's real ``(width, height)`` differs from the image record, else None.

    It names the image id, the differing field(s) and both sizes; a swapped pair is flagged as a
    likely EXIF rotation.
    """
    width, height = actual
    wrong = [key for key, real in (("width", width), ("height", height)) if float(record[key]) != real]
    if not wrong:
        return None
    fields = " and ".join(f"'{key}'" for key in wrong)
    hint = " (swapped: EXIF rotation?)" if (float(record["width"]), float(record["height"])) == (height, width) else ""
    verb = "say" if len(wrong) > 1 else "says"
    return (f"image id={record['id']}: field{'s' if len(wrong) > 1 else ''} {fields} {verb} "
            f"{record['width']:g}x{record['height']:g} but file {file} is {width}x{height}{hint}")
