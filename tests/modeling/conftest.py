"""Modeling tests: mmdet's compiled ops come from the TEST SCAFFOLDING shim (tests/support)."""

import pytest


@pytest.fixture(scope="session")
def mmcv_ext():
    """``mmcv._ext`` backed by torchvision (tests/support/mmcv_ext_shim.py), installed once."""
    from tests.support.mmcv_ext_shim import install

    return install()
