"""canonical_name: one key per class across COCO, Objects365 v1 and v2's spellings.

v2's misspellings are owned by ``o365lib.data.objects365`` (``normalize_class_name``); the names
module keeps only v2's merged / renamed classes and must give the keys it gave when it held its own
copy of the misspellings.
"""

from __future__ import annotations

import pytest

from o365lib.data.objects365 import normalize_class_name
from o365lib.modeling.coco_objects365_names import (
    COCO80_NAMES,
    OBJECTS365_V2_TO_V1,
    canonical_name,
    match_category_names,
)

#: v2 spelling -> v1 key, as the names module's own table gave them before it used the data layer's.
V2_TO_V1_KEYS = {
    "Bakset": "basket", "Ballon": "balloon", "Hotair ballon": "hotair balloon", "Billards": "billiards",
    "Buttefly": "butterfly", "Campel": "camel", "Dinning Table": "dining table",
    "Extention Cord": "extension cord", "Mushroon": "mushroom", "Noddles": "noodles",
    "Table Teniis paddle": "table tennis paddle", "Tape Measur/ Ruler": "tape measure/ruler",
    "Trash bin Can": "trash bin/can", "Moniter/TV": "tv", "Handbag/Satchel": "handbag",
    "Bowl/Basin": "bowl", "Orange/Tangerine": "orange", "Cigar/Cigarette": "cigar", "Gloves": "glove",
    "Grape": "grapes", "Hair Dryer": "hair drier", "Lifesaver": "life saver", "Meat ball": "meat balls",
    "Pineapple": "pine apple", "Toiletry": "toiletries",
    "Washing Machine/Drying Machine": "washing machine", "Table Tennis ": "table tennis",
}


@pytest.mark.parametrize(("name", "key"), sorted(V2_TO_V1_KEYS.items()))
def test_v2_spellings_give_v1_keys(name, key):
    assert canonical_name(name) == key
    assert canonical_name(name.lower().replace(" ", "_")) == key.replace("_", " ")


def test_coco_names_are_their_own_keys():
    assert [canonical_name(n) for n in COCO80_NAMES] == list(COCO80_NAMES)


def test_the_names_module_holds_no_misspelling():
    """Its table maps normalised names only: a typo in it would be a second copy of the data layer's."""
    assert all(normalize_class_name(name) == name for name in OBJECTS365_V2_TO_V1)


def test_coco_rows_match_v2_names():
    matches = match_category_names(COCO80_NAMES, ["Moniter/TV", "Dinning Table", "Person", "Bakset"])
    assert matches == {0: COCO80_NAMES.index("tv"), 1: COCO80_NAMES.index("dining table"),
                       2: COCO80_NAMES.index("person")}
