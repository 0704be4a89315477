"""The output guard (``hrnet.io.outputs``): special files, inputs by path, symlink and hard link, files that are not
ours, the manifest, the folder lock and the temporaries of a killed run."""

import json
import logging
import os
import socket
import stat
import subprocess
import sys

import pytest

from hrnet.errors import OutputError
from hrnet.io.files import atomic_path, write_text_atomic
from hrnet.io.outputs import LOCK, MANIFEST, Manifest, OutputFolder, check_output_file, record_output

COMMAND = "hrnet test"


def test_a_device_or_named_pipe_is_never_written_over(tmp_path):
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=r"null: the --out file is a named pipe \(FIFO\), not a regular file"):
            check_output_file(fifo, command=COMMAND, overwrite=overwrite)
    link = tmp_path / "link.onnx"
    link.symlink_to(fifo)  # a link to a device is the device
    with pytest.raises(OutputError, match="is a named pipe"):
        check_output_file(link, command=COMMAND, overwrite=True)
    with pytest.raises(OutputError, match=r"null: a named pipe \(FIFO\), not a regular file"), atomic_path(fifo):
        pass  # every atomic write refuses it too, whoever calls
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_input_is_refused_by_path_symlink_and_hard_link(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "sym.onnx").symlink_to(weights)
    os.link(weights, tmp_path / "hard.onnx")
    for out in (weights, tmp_path / "sym.onnx", tmp_path / "hard.onnx", tmp_path / "." / "w.safetensors"):
        with pytest.raises(OutputError, match=r"is the input .*w\.safetensors: the --out file would replace the input"):
            check_output_file(out, command=COMMAND, inputs=[None, weights], overwrite=True)
    assert weights.read_bytes() == b"weights"


def test_an_existing_file_is_replaced_only_when_this_command_wrote_it(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt: the --out file would replace a file that hrnet test did not"):
        check_output_file(mine, command=COMMAND)
    assert check_output_file(mine, command=COMMAND, overwrite=True) == mine
    assert check_output_file(mine, command=COMMAND, is_ours=lambda p: p.read_text() == "mine") == mine

    out = tmp_path / "net.svg"
    write_text_atomic(out, "<svg/>")
    record_output(out, COMMAND)
    assert check_output_file(out, command=COMMAND) == out
    with pytest.raises(OutputError, match="did not write"):
        check_output_file(out, command="hrnet other")  # another command's output is not this one's
    os.utime(out, ns=(1, 1))  # copied (new time, same bytes): still ours, by its SHA-256
    assert check_output_file(out, command=COMMAND) == out
    out.write_text("<svg>edited</svg>")  # changed since: the user's now
    with pytest.raises(OutputError, match="did not write"):
        check_output_file(out, command=COMMAND)


def test_the_manifest_keeps_the_entries_of_other_writers(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    first = Manifest.load(tmp_path)  # read before the other writer records b
    record_output(b, COMMAND)
    first.add(a, COMMAND)
    first.save()
    again = Manifest.load(tmp_path)
    assert again.holds(a, COMMAND) and again.holds(b, COMMAND)
    (tmp_path / MANIFEST).write_text("{broken")
    assert not Manifest.load(tmp_path).holds(a, COMMAND)  # a broken manifest: nothing is taken for ours


def test_a_folder_is_locked_for_the_run_and_let_go_after(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out, command=COMMAND) as folder:
        lock = json.loads((out / LOCK).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        with pytest.raises(OutputError, match=rf"out: another run, pid {os.getpid()} .*is writing into this folder"):
            OutputFolder(out, command=COMMAND).__enter__()
        written = folder.claim(out / "a.json")
        written.write_text("{}")
        folder.claim(out / "never.json")  # claimed, never written: dropped from the manifest at the end
        folder.record(written)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.json"]
    assert list(json.loads((out / MANIFEST).read_text())["files"]) == ["a.json"]
    with OutputFolder(out, command=COMMAND) as folder:
        assert folder.claim(out / "a.json") == out / "a.json"  # ours from the run before


def test_a_lock_held_by_a_live_process_is_refused_with_its_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp_path.joinpath(LOCK).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname(), "command": "hrnet predict x"})
        )
        with pytest.raises(OutputError, match=rf"another run, pid {holder.pid} \(hrnet predict x\), is writing"):
            OutputFolder(tmp_path, command=COMMAND).__enter__()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_runs_lock_is_taken_over_and_its_temporaries_removed(tmp_path, caplog):
    """SIGTERM leaves the lock and the temporary files of atomic writes; the next run into the folder takes the
    lock with a warning and deletes the temporaries, also in the subfolders it writes into."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "command": "x"}))
    stale = [tmp_path / ".clip.mp4.1a2b3c4d.tmp.jsonl", tmp_path / "images" / ".000001.0badcafe.tmp.jpg"]
    stale[1].parent.mkdir()
    for path in stale:
        path.write_bytes(b"half")
    with caplog.at_level(logging.WARNING, logger="hrnet"), OutputFolder(tmp_path, command=COMMAND) as folder:
        assert f"took over the lock of pid {gone.pid}, which is no longer running" in caplog.text
        assert not stale[0].exists() and stale[1].exists()
        folder.claim(tmp_path / "images" / "000001.jpg")
        assert not stale[1].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_claims_in_a_folder_check_inputs_and_files_that_are_not_ours(tmp_path):
    photo = tmp_path / "a_pose.jpg"
    photo.write_bytes(b"photo")
    with OutputFolder(tmp_path, command=COMMAND, inputs=[photo]) as folder:
        with pytest.raises(OutputError, match=r"a_pose\.jpg is the input .*a_pose\.jpg: the drawing of a\.jpg would"):
            folder.claim(photo, "the drawing of a.jpg")
        (tmp_path / "b.json").write_text("mine")
        with pytest.raises(OutputError, match=r"b\.json: an output would replace a file that hrnet test did not write"):
            folder.claim(tmp_path / "b.json")
    with OutputFolder(tmp_path, command=COMMAND, inputs=[photo], overwrite=True) as folder:
        assert folder.claim(tmp_path / "b.json") == tmp_path / "b.json"
        with pytest.raises(OutputError, match="is the input"):
            folder.claim(photo)
    assert photo.read_bytes() == b"photo"
