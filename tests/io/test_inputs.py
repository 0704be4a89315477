"""Input discovery: regular files only, everything else named and skipped unopened; decimal ids in names."""

import os
import socket
from pathlib import Path

import pytest

from hrnet.errors import DataError
from hrnet.io.files import file_kind
from hrnet.io.inputs import Skipped, check_not_special, decimal_id, list_inputs


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", 0), ("000000000785", 785), ("9" * 18, 10**18 - 1), ("²", None), ("³⁴", None), ("٣", None),
     ("-1", None), ("+1", None), (" 1", None), ("1.0", None), ("", None), ("9" * 19, None), ("0x1f", None)],
)  # fmt: skip
def test_decimal_ids_are_ascii_digits_only(text, number):
    assert text.isdigit() or number is None  # "²".isdigit() is true: the trap this rule avoids
    assert decimal_id(text) == number


def special_folder(folder: Path) -> dict[str, str]:
    """Fill ``folder`` with entries named like images that are not regular files; returns name → what it is."""
    folder.mkdir(exist_ok=True)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "folder.jpg").mkdir()
    (folder / "dangling.jpg").symlink_to(folder / "absent.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop.jpg")
    (folder / "null.jpg").symlink_to(os.devnull)
    kinds = {
        "pipe.jpg": "a named pipe (FIFO)",
        "folder.jpg": "folder",
        "dangling.jpg": "a dangling symbolic link",
        "loop.jpg": "a symbolic link loop",
        "loop2.jpg": "a symbolic link loop",
        "null.jpg": "a device",
    }
    if len(str(folder / "sock.jpg")) < 100:  # AF_UNIX paths are short
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(folder / "sock.jpg"))
        kinds["sock.jpg"] = "a socket"
    return kinds


def test_a_folder_lists_regular_files_and_names_the_rest(tmp_path):
    kinds = special_folder(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "B.PNG").write_bytes(b"b")
    (tmp_path / "link.png").symlink_to(tmp_path / "a.jpg")  # a link to a regular file is one
    (tmp_path / "notes.txt").write_text("not an input")
    files, skipped = list_inputs(tmp_path, {".jpg", ".png"})
    assert files == [tmp_path / "B.PNG", tmp_path / "a.jpg", tmp_path / "link.png"]
    assert skipped == [Skipped(tmp_path / name, kind) for name, kind in sorted(kinds.items())]
    assert file_kind(tmp_path / "absent.jpg") is None


def test_special_entries_are_refused_by_name_without_opening_them(tmp_path):
    special_folder(tmp_path)
    with pytest.raises(DataError, match=r"pipe\.jpg: the input is a named pipe \(FIFO\), not a regular file"):
        check_not_special(tmp_path / "pipe.jpg")
    with pytest.raises(DataError, match=r"loop\.jpg: the video is a symbolic link loop, not a regular file"):
        check_not_special(tmp_path / "loop.jpg", "video")
    for fine in ("folder.jpg", "absent.jpg"):  # a folder is expanded, a missing file reported by its reader
        check_not_special(tmp_path / fine)


def test_a_folder_that_cannot_be_listed_is_one_error(tmp_path):
    with pytest.raises(DataError, match=r"absent: cannot list the folder \(No such file or directory\)"):
        list_inputs(tmp_path / "absent", {".jpg"})
