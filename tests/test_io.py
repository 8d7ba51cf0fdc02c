"""``o365lib.io``: atomically written files get the permissions of a plain ``open(path, "w")``."""

from __future__ import annotations

import os
import stat

import pytest

from o365lib import io


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027, 0o077, 0o000])
def test_atomic_files_get_the_mode_of_a_plain_open(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as handle:
        handle.write("x")
    text = io.write_text(tmp_path / "text.txt", "x")
    data = io.write_json(tmp_path / "sub" / "data.json", {"a": 1})
    raw = io.atomic_write(tmp_path / "raw.bin", lambda tmp: open(tmp, "wb").close())
    assert _mode(plain) == 0o666 & ~mask
    assert [_mode(p) for p in (text, data, raw)] == [_mode(plain)] * 3


def test_rewriting_a_private_file_gives_it_the_umask_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "metrics.json"
    path.write_text("{}")
    os.chmod(path, 0o600)  # as written by earlier versions
    io.write_json(path, {"a": 1})
    assert _mode(path) == 0o644


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_current_umask_without_proc(monkeypatch, umask, mask):
    umask(mask)
    assert io.current_umask() == mask

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(io, "open", no_proc, raising=False)
    assert io.current_umask() == mask
    assert os.umask(mask) == mask  # the fallback restored it


def test_generated_data_folders_get_the_mode_of_a_plain_mkdir(tmp_path, umask):
    from o365lib.data.synthetic import make_dataset

    umask(0o022)
    paths = make_dataset(tmp_path / "synthetic", "smoke", 0)
    assert _mode(paths.root) == 0o755  # not tempfile.mkdtemp's 0700
    assert _mode(paths.train) == 0o644
