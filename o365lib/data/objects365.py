"""Objects365 as users download it: file layouts, images the release lists but does not ship, names.

Two releases exist, both COCO-format JSON:

- **v1** (the 2019 challenge data of Lu et al. 2019): ``objects365_train.json``,
  ``objects365_val.json`` (plus the tiny track's ``objects365_Tiny_*.json``), 365 classes. File
  names are relative to the image folder (``train/``, ``val/``) and resolve as given (layout
  ``"coco"``). Train and val list their categories in *different orders*: categories are always
  matched by id here (never by position), and ``o365lib.data.check`` reports the order difference.
- **v2**: ``zhiyuan_objv2_train.json`` (1.74M images), ``zhiyuan_objv2_val.json`` (80k). File
  names read ``images/v1/patch8/objects365_v1_00420917.jpg`` while the archive unpacks to
  ``train/patch8/objects365_v1_00420917.jpg``. With layout ``"objects365_v2"`` such a name
  resolves to ``<image_root>/patch8/objects365_v1_00420917.jpg`` (the last two parts), so
  ``image_root`` is the unpacked ``train/`` (or ``val/``) folder. The JSON is never rewritten:
  ``file_name`` stays as given, only the path on disk is derived from it.

Three images listed by v2 train are not in the archive (:data:`KNOWN_MISSING`); the loader skips
them and their annotations with a :class:`~o365lib.data.validate.DataWarning` naming them.

v2 annotations carry two extra 0/1 fields, kept as given and used by nothing here (like the
official baselines, the detector trains on every box):

- ``isfake``: the object is a depiction, not the object itself (a car on a poster, a person on
  a TV screen);
- ``isreflected``: the object is seen in a mirror or another reflecting surface.

``o365lib.data.check`` counts both. v2 class names contain typos and stray spaces ('Bakset',
'Ballon', 'Moniter/TV', 'Formula 1 '). Names are kept exactly as given (they are the
release's identifiers); :func:`normalize_class_name` gives a canonical form for *matching* names
(e.g. v1 'basket' with v2 'Bakset'), never for display or ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "KNOWN_MISSING",
    "LAYOUTS",
    "class_name_issue",
    "detect_layout",
    "known_missing_key",
    "normalize_class_name",
    "relative_image_name",
    "release_of",
]

LAYOUTS = ("coco", "objects365_v2")

#: Images listed by ``zhiyuan_objv2_train.json`` but absent from the archive, as ``patchN/name``.
KNOWN_MISSING = frozenset({
    "patch16/objects365_v2_00908726.jpg",
    "patch6/objects365_v1_00320532.jpg",
    "patch6/objects365_v1_00320534.jpg",
})

_V2_NAME = re.compile(r"^images/v\d+/(patch\d+/[^/]+)$")

#: Word-level typo fixes for names of the v2 release (lower case): the one table of its misspellings
#: (``o365lib.modeling.coco_objects365_names`` uses it through :func:`normalize_class_name`).
_TYPOS = {
    "bakset": "basket",
    "ballon": "balloon",
    "billards": "billiards",
    "buttefly": "butterfly",
    "campel": "camel",
    "dinning": "dining",
    "extention": "extension",
    "measur": "measure",
    "moniter": "monitor",
    "mushroon": "mushroom",
    "noddles": "noodles",
    "teniis": "tennis",
}


def relative_image_name(file_name: str, *, layout: str) -> str:
    """The path of an image file relative to its image folder, from the JSON's ``file_name``.

    Layout ``"coco"`` keeps the name; ``"objects365_v2"`` maps ``images/vN/patchM/x.jpg`` to
    ``patchM/x.jpg`` (other names are kept).
    """
    if layout == "coco":
        return file_name
    if layout != "objects365_v2":
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    match = _V2_NAME.match(file_name.replace("\\", "/"))
    return match.group(1) if match else file_name


def known_missing_key(file_name: str) -> str:
    """``patchN/name`` of a file name (its last two parts), the form :data:`KNOWN_MISSING` uses."""
    parts = file_name.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def detect_layout(file_names: Iterable[str], *, image_root: str | Path) -> str:
    """``"objects365_v2"`` when the names look like v2's and ``image_root`` has no ``images/`` folder.

    A name looks like v2's when it matches ``images/vN/patchM/<file>``; the first 100 names are
    looked at, and all of them must match. When ``<image_root>/images`` exists the names are taken
    to resolve as given (``"coco"``): the user kept the JSON's tree.
    """
    first = []
    for name in file_names:
        first.append(name)
        if len(first) == 100:
            break
    if not first or not all(isinstance(n, str) and _V2_NAME.match(n.replace("\\", "/")) for n in first):
        return "coco"
    return "coco" if os.path.isdir(os.path.join(image_root, "images")) else "objects365_v2"


def release_of(path: str | Path) -> str | None:
    """``"v1"`` / ``"v2"`` from an annotation file's name as downloaded, else None."""
    name = Path(path).name.lower()
    if name.startswith("zhiyuan_objv2"):
        return "v2"
    if name.startswith("objects365_"):
        return "v1"
    return None


def normalize_class_name(name: str) -> str:
    """Canonical form of a class name for matching: lower case, trimmed, known v2 typos fixed.

    Whitespace runs become one space, spaces around ``/`` are removed and the misspelled words
    of the v2 release are corrected: ``'Bakset'`` -> ``'basket'``, ``'Tape Measur/ Ruler'`` ->
    ``'tape measure/ruler'``, ``'Formula 1 '`` -> ``'formula 1'``.
    """
    text = re.sub(r"\s+", " ", str(name)).strip().lower()
    text = re.sub(r"\s*/\s*", "/", text)
    return re.sub(r"[a-z]+", lambda m: _TYPOS.get(m.group(0), m.group(0)), text)


def class_name_issue(name: str) -> str | None:
    """What is odd about a class name as given ("stray spaces", "known typo"), or None."""
    issues = []
    if name != " ".join(name.split()):
        issues.append("stray spaces")
    plain = re.sub(r"\s*/\s*", "/", " ".join(name.split()).lower())
    if normalize_class_name(name) != plain:
        issues.append("known typo")
    return " and ".join(issues) or None
