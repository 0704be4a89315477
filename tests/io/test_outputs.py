"""The output guard (``hrnet.io.outputs``): special files, inputs by path, symlink and hard link, files that hrnet
did not write, the manifest, the folder lock and the temporaries of a killed run."""

import json
import logging
import os
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
        check_output_file(link, command=COMMAND, overwrite=True, is_ours=lambda p: True)
    with pytest.raises(OutputError, match=r"null: a named pipe \(FIFO\), not a regular file"), atomic_path(fifo):
        pass  # every atomic write refuses it too, whoever calls
    (tmp_path / "sub").mkdir()
    folder = OutputFolder(tmp_path, command=COMMAND, overwrite=True)
    with pytest.raises(OutputError, match=r"sub: an output is a folder, not a regular file"):
        folder.claim(tmp_path / "sub")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_input_is_refused_by_path_symlink_and_hard_link(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "sym.onnx").symlink_to(weights)
    os.link(weights, tmp_path / "hard.onnx")
    for out in (weights, tmp_path / "sym.onnx", tmp_path / "hard.onnx", tmp_path / "." / "w.safetensors"):
        with pytest.raises(OutputError, match=r"is the input .*w\.safetensors: the --out file would replace the input"):
            check_output_file(out, command=COMMAND, inputs=[None, weights], overwrite=True, is_ours=lambda p: True)
    assert weights.read_bytes() == b"weights"


def test_an_existing_file_is_replaced_only_when_hrnet_wrote_it(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt: the --out file would replace a file that hrnet test did not"):
        check_output_file(mine, command=COMMAND)
    assert check_output_file(mine, command=COMMAND, overwrite=True) == mine
    assert check_output_file(mine, command=COMMAND, is_ours=lambda p: p.read_text() == "mine") == mine

    out = tmp_path / "net.svg"
    write_text_atomic(out, "<svg/>")
    with pytest.raises(OutputError, match="did not write"):
        check_output_file(out, command=COMMAND)  # written, but not listed
    record_output(out)
    assert check_output_file(out, command=COMMAND) == out
    os.utime(out, ns=(1, 1))  # copied (new time, same bytes): still hrnet's, by its SHA-256
    assert check_output_file(out, command=COMMAND) == out
    out.write_text("<svg>edited</svg>")  # changed since: the user's now
    with pytest.raises(OutputError, match="did not write"):
        check_output_file(out, command=COMMAND)


def test_the_manifest_keeps_the_entries_of_other_writers(tmp_path, caplog):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    first = Manifest(tmp_path)  # read before the other writer lists b
    record_output(b)
    first.add(a)
    first.save()
    again = Manifest(tmp_path)
    assert again.holds(a) and again.holds(b)
    b.unlink()
    again.save()  # a file that is gone is dropped
    assert list(json.loads((tmp_path / MANIFEST).read_text())["files"]) == ["a.png"]
    (tmp_path / MANIFEST).write_text("{broken")
    with caplog.at_level(logging.WARNING, logger="hrnet"):
        assert not Manifest(tmp_path).holds(a)  # a broken manifest: nothing is taken for hrnet's
    assert "not an hrnet manifest" in caplog.text


def test_a_folder_is_locked_for_the_run_and_let_go_after(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out, command=COMMAND) as folder:
        with pytest.raises(OutputError, match=r"out: another run is writing into this folder; wait for it, or"):
            OutputFolder(out, command=COMMAND).__enter__()
        written = folder.claim(out / "a.json")
        written.write_text("{}")
        folder.claim(out / "never.json")  # claimed, never written: not listed
        folder.record(written)
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK) == [MANIFEST, "a.json"]
    assert list(json.loads((out / MANIFEST).read_text())["files"]) == ["a.json"]
    with OutputFolder(out, command=COMMAND) as folder:
        assert folder.claim(out / "a.json") == out / "a.json"  # hrnet's from the run before


@pytest.mark.parametrize("name", [LOCK, MANIFEST])
@pytest.mark.parametrize("kind", ["named pipe", "folder"])
def test_a_special_file_where_hrnet_keeps_its_lock_or_list_is_one_error(tmp_path, name, kind):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / name) if kind == "named pipe" else (out / name).mkdir()  # a pipe would block its reader
    with (
        pytest.raises(
            OutputError, match=rf"out/{name}: a (named pipe \(FIFO\)|folder) where hrnet keeps .*; remove it"
        ),
        OutputFolder(out, command=COMMAND) as folder,
    ):
        folder.claim(out / "a.json")


def test_a_folder_locked_by_another_process_is_refused_until_that_process_is_killed(tmp_path):
    """The lock is the system's: a run killed without warning (SIGKILL) leaves nothing that holds the folder."""
    code = f"import filelock, time; lock = filelock.FileLock({str(tmp_path / LOCK)!r}); lock.acquire(); "
    code += "print('held', flush=True); time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
            with pytest.raises(OutputError, match=r"another run is writing into this folder"):
                OutputFolder(tmp_path, command=COMMAND).__enter__()
        finally:
            holder.kill()
    with OutputFolder(tmp_path, command=COMMAND):
        pass


def test_a_killed_runs_temporaries_are_removed_and_nothing_else(tmp_path, caplog):
    """SIGTERM leaves the temporary files of atomic writes; the next run deletes them in each folder that it
    writes into, and only them: the marked names that ``atomic_path`` gives, never a user's hidden file."""
    with atomic_path(tmp_path / "clip.mp4.jsonl") as tmp:
        stale = [tmp_path / tmp.name, tmp_path / "images" / tmp.name.replace("clip.mp4", "000001")]
    stale[1].parent.mkdir()
    kept = [tmp_path / ".notes.deadbeef.tmp.txt", tmp_path / "images" / ".clip.1a2b3c4d.tmp.jpg"]
    for path in stale + kept:
        path.write_bytes(b"half")
    with caplog.at_level(logging.INFO, logger="hrnet"), OutputFolder(tmp_path, command=COMMAND) as folder:
        folder.claim(tmp_path / "a.json")
        assert not stale[0].exists() and stale[1].exists()
        folder.claim(tmp_path / "images" / "000001.jpg")
        assert not stale[1].exists()
    assert f"removed {stale[0]}, left by a process killed while writing it" in caplog.text
    assert all(path.read_bytes() == b"half" for path in kept)


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


def test_a_folder_made_for_a_run_that_failed_is_removed_again(tmp_path):
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "new", command=COMMAND):
        raise RuntimeError("refused before anything was written")
    assert not (tmp_path / "new").exists()


def test_a_failed_run_takes_away_the_folders_it_made_and_only_those(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "runs" / "a" / "b", command="hrnet train"):
        raise RuntimeError("no data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any((tmp_path / "runs").iterdir())


def test_an_output_s_temporaries_left_by_a_dead_writer_go_and_no_other_file(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(finished.stdout), os.getpid()
    names = {
        f".x.{dead}-0badcafe.hrnet.tmp.onnx": False,  # a killed export's: removed
        f".x.{alive}-0badcafe.hrnet.tmp.onnx": True,  # a live writer's: kept
        ".x.deadbeef.tmp.onnx": True,  # the user's own look-alike: kept
        f".y.{dead}-0badcafe.hrnet.tmp.onnx": True,  # another output's: not this claim's business
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    check_output_file(tmp_path / "x.onnx", command="hrnet export")
    assert {name: (tmp_path / name).exists() for name in names} == names
