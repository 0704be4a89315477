"""Atomic writes: whole files or none, with ordinary permissions."""

import hashlib
import os
import subprocess
import sys

import pytest

from hrnet.errors import DataError
from hrnet.io.files import atomic_write, read_json, sha256_file, write_json_atomic, write_text_atomic


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


def test_sha256_of_a_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * (3 << 20))  # more than one block
    assert sha256_file(tmp_path / "a.bin") == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


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


def test_json_refuses_nan_and_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"metrics\.json: not written: the data holds NaN or infinity"):
        write_json_atomic(tmp_path / "metrics.json", {"AP": float("nan")})
    assert not (tmp_path / "metrics.json").exists()


def test_read_json_names_the_file_and_what_it_should_be(tmp_path):
    path = tmp_path / "boxes.json"
    with pytest.raises(DataError, match=r"boxes\.json: cannot read the detection-results file"):
        read_json(path, "detection-results file")
    path.write_text('[{"bbox": [1, 2,')
    with pytest.raises(DataError, match=r"boxes\.json: not valid JSON at line 1, column \d+ .*detection-results file"):
        read_json(path, "detection-results file")
    path.write_bytes(b'["\xff"]')
    with pytest.raises(DataError, match=r"boxes\.json: the detection-results file is not UTF-8 JSON"):
        read_json(path, "detection-results file")
    path.write_text('{"a": [1, 2]}')
    assert read_json(path) == {"a": [1, 2]}


def test_importing_the_package_changes_no_process_state():
    # A fresh interpreter: the umask and glibc's malloc settings are the process's own until a command asks.
    code = (
        "import os; os.umask(0o027)\n"
        "import hrnet.cli, hrnet.pose.estimator, hrnet.engine.train, hrnet.io.files, hrnet.system\n"
        "from hrnet.config import ExperimentConfig\n"
        "from hrnet.pose.estimator import PoseEstimator\n"
        "assert os.umask(0o027) == 0o027\n"
        "assert hrnet.system._state is None, 'keep_freed_memory ran on import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_deeply_nested_json_is_a_data_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match=r"deep\.json: the annotation file is nested too deeply \(over \d+ levels\)"):
        read_json(path, "annotation file")


def test_huge_numbers_and_huge_files_are_one_line_before_any_memory_is_spent(tmp_path):
    from hrnet.io.files import MAX_JSON_BYTES
    from hrnet.io.images import MAX_IMAGE_BYTES, read_image

    digits = tmp_path / "digits.json"
    digits.write_text('[{"image_id": ' + "7" * 5000 + "}]")
    with pytest.raises(DataError, match=r"^.*digits\.json: the boxes file holds a number hrnet does not read: Exceeds"):
        read_json(digits, "boxes file")
    # Sparse: the size a file says is refused before a byte is read (reading would fill the memory).
    for path, limit, read, what in (
        (tmp_path / "huge.json", MAX_JSON_BYTES, lambda p: read_json(p, "annotation file"), "annotation file"),
        (tmp_path / "huge.jpg", MAX_IMAGE_BYTES, read_image, "image file"),
    ):
        with path.open("wb") as f:
            f.truncate(limit + 1)
        with pytest.raises(DataError, match=rf"huge\.\w+: over {limit:,} bytes, far more than a {what} holds"):
            read(path)


def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path):
    from hrnet.io.images import read_image

    fifo = tmp_path / "000000000785.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"000000000785\.jpg: a named pipe \(FIFO\) where the image file should be"):
        read_image(fifo)
    with pytest.raises(DataError, match=r"a named pipe \(FIFO\) where the annotation file should be"):
        read_json(fifo, "annotation file")


def test_a_name_of_the_longest_length_is_written_whole(tmp_path):
    path = tmp_path / ("é" * 55 + "x" * 130 + ".jpg.json")  # 249 bytes: its temporary would be longer than 255
    write_text_atomic(path, "[]")
    assert path.read_text() == "[]" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_full_disk_is_one_output_error_naming_the_file_and_the_size_needed(tmp_path):
    """ENOSPC or EDQUOT (a quota) from any writer, or a writer's own error quoting it: one OutputError with the path
    and the size when the writer knows it; the earlier file is kept and no temporary is left."""
    import errno

    from hrnet.errors import OutputError
    from hrnet.io.files import is_full_disk

    target = tmp_path / "model.onnx"
    target.write_bytes(b"earlier")
    for code, needed, said in ((errno.ENOSPC, 123_456_789, "; it needs about 123.5 MB"), (errno.EDQUOT, None, "")):

        def full(tmp, code=code):
            tmp.write_bytes(b"half")
            raise OSError(code, os.strerror(code))

        with pytest.raises(OutputError) as err:
            atomic_write(target, full, needed)
        assert str(err.value) == (
            f"{target}: cannot write it (no space left on the device{said}); nothing partial was kept and nothing "
            "was replaced: free some space, or choose a folder on another disk, and run it again"
        )
        assert target.read_bytes() == b"earlier" and list(tmp_path.iterdir()) == [target]
    assert is_full_disk(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert not is_full_disk(RuntimeError("I/O error: Permission denied (os error 13)"))
    with pytest.raises(RuntimeError, match="killed"):  # anything else passes through as it is
        atomic_write(target, lambda tmp: (_ for _ in ()).throw(RuntimeError("killed")))
