"""Atomic writes: whole files or none, with ordinary permissions."""

import os

import pytest

from hrnet.fileio import atomic_write, write_json_atomic, write_text_atomic


def test_whole_file_or_nothing(tmp_path):
    target = tmp_path / "sub" / "result.json"
    write_json_atomic(target, {"ap": 0.5})
    assert target.read_text() == '{\n "ap": 0.5\n}\n'

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == '{\n "ap": 0.5\n}\n'  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]  # no temporary left


def test_permissions_follow_the_umask(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def test_writers_that_create_private_files_get_ordinary_permissions(tmp_path):
    import torch
    from safetensors.torch import save_file

    atomic_write(tmp_path / "w.safetensors", lambda tmp: save_file({"a": torch.zeros(1)}, str(tmp)))
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
