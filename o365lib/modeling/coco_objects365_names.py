"""Category names for COCO-pretrained starts: COCO-80 -> Objects365 v1 / v2, spelling included.

A COCO detector's classifier has one row per COCO class. Starting an Objects365 detector from it,
the rows of classes both data sets share (person, car, dog, ...) are worth keeping; the others
start fresh. The two data sets name the same thing differently ("bird" / "wild bird", "tv" /
"Moniter/TV"), and Objects365 v2's file spells some names wrongly or with trailing spaces
('Bakset', 'Ballon', 'Dinning Table', 'Table Tennis '). ``canonical_name`` turns any of these
spellings into one key: lower case, single spaces, v2's misspellings fixed (the table lives in
``o365lib.data.objects365``) and v2's merged names mapped to v1's names. ``category_key_candidates``
adds, for a COCO name, the Objects365 names it corresponds to.

Data only: the names are the data sets' public category lists (COCO 2017, Objects365 v1/v2 as
distributed); the correspondence is ours.
"""

from __future__ import annotations

from o365lib.data.objects365 import normalize_class_name

#: COCO-80 in the order of COCO's category ids (mmdet's class order for COCO checkpoints).
COCO80_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

#: Objects365 v2 names (after :func:`~o365lib.data.objects365.normalize_class_name`, which fixes the
#: release's misspellings) -> the v1 name of the same class, where v2 merged or renamed it.
OBJECTS365_V2_TO_V1 = {
    "monitor/tv": "tv",
    "trash bin can": "trash bin/can",
    "handbag/satchel": "handbag",
    "bowl/basin": "bowl",
    "orange/tangerine": "orange",
    "cigar/cigarette": "cigar",
    "gloves": "glove",
    "grape": "grapes",
    "hair dryer": "hair drier",
    "lifesaver": "life saver",
    "meat ball": "meat balls",
    "pineapple": "pine apple",
    "toiletry": "toiletries",
    "washing machine/drying machine": "washing machine",
}

#: COCO name -> Objects365 names (canonical, in order of preference) of the same class.
COCO_TO_OBJECTS365 = {
    "bird": ("wild bird",),
    "suitcase": ("suitcase", "luggage"),
    "skis": ("skis", "skiboard"),
    "sports ball": ("other balls",),
    "teddy bear": ("teddy bear", "stuffed toy"),
    "potted plant": ("potted plant",),
    "dining table": ("dining table",),
}


def canonical_name(name: str) -> str:
    """One spelling per class: ``_`` as space, ``normalize_class_name`` (lower case, single spaces,
    no spaces around ``/``, v2 typos fixed), then v2's merged names as v1 names."""
    key = normalize_class_name(str(name).replace("_", " "))
    return OBJECTS365_V2_TO_V1.get(key, key)


def category_key_candidates(name: str) -> tuple[str, ...]:
    """Canonical keys a category called ``name`` may match in another data set, best first."""
    key = canonical_name(name)
    return (key, *(k for k in COCO_TO_OBJECTS365.get(key, ()) if k != key))


def match_category_names(source_names, target_names) -> dict[int, int]:
    """``{target index: source index}`` for target categories with a same-named source category.

    Names are compared through ``canonical_name``; a source COCO name also matches its Objects365
    names (``COCO_TO_OBJECTS365``). Each source category is used for at most one target (the
    first target name, in order, that claims it).
    """
    source_by_key: dict[str, int] = {}
    for index, name in enumerate(source_names):
        for key in category_key_candidates(name):
            source_by_key.setdefault(key, index)
    matches: dict[int, int] = {}
    used: set[int] = set()
    for index, name in enumerate(target_names):
        source = source_by_key.get(canonical_name(name))
        if source is not None and source not in used:
            matches[index] = source
            used.add(source)
    return matches
