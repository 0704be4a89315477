"""Weights I/O: official .pth forms, MMPose names, our safetensors, and refusing unsafe pickles."""

import os
import pathlib
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from hrnet.errors import CheckpointError
from hrnet.models.checkpoint import load_model, load_pretrained, load_weights, read_state_dict, save_weights
from hrnet.models.hrnet import HRNet, build_model
from tests.conftest import tiny_model_config


@pytest.fixture
def source():
    torch.manual_seed(1)
    model = HRNet(tiny_model_config())
    for p in model.parameters():  # distinctive values, so a load that silently did nothing is caught
        p.data.normal_()
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def test_plain_official_state_dict(tmp_path, source):
    path = tmp_path / "pose_hrnet.pth"
    torch.save(source.state_dict(), path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


def test_official_resume_file_with_dataparallel_prefix(tmp_path, source):
    path = tmp_path / "checkpoint.pth"
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 3, "model": "pose_hrnet", "state_dict": wrapped, "perf": 0.7}, path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


@pytest.mark.parametrize("head", ["keypoint_head.final_layer", "head.final_layer"])
def test_mmpose_names_are_mapped(tmp_path, source, head):
    state = {}
    for k, v in source.state_dict().items():
        state[k.replace("final_layer", head) if k.startswith("final_layer") else f"backbone.{k}"] = v
    state["data_preprocessor.mean"] = torch.zeros(3)  # MMPose 1.x extras are not ours and are dropped
    path = tmp_path / "mmpose.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": state}, path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


def test_missing_num_batches_tracked_is_accepted(tmp_path, source):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}, path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    torch.testing.assert_close(target.final_layer.weight, source.final_layer.weight)


def test_safetensors_round_trip_is_atomic(tmp_path, source):
    path = tmp_path / "weights.safetensors"
    save_weights(source, path, metadata={"preset": "tiny"})
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]  # no temporary file left
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


def test_shape_mismatch_names_keys_and_both_shapes(tmp_path, source):
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    wrong = HRNet(tiny_model_config(num_keypoints=14))
    with pytest.raises(CheckpointError) as err:
        load_weights(wrong, path)
    msg = str(err.value)
    assert "w.pth" in msg and "final_layer.weight: file (17, 8, 1, 1) vs model (14, 8, 1, 1)" in msg


def test_missing_and_unexpected_keys_are_listed(tmp_path, source):
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["final_layer.bias"]
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. final_layer\.bias\); 1 unexpected \(e\.g\. extra"):
        load_weights(HRNet(tiny_model_config()), path)


class _CreatesFile:
    """Unpickling this calls Path.touch: the kind of side effect a malicious checkpoint would have."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    # The same payload, loaded unsafely, really does create its file: the test can fail.
    witness = tmp_path / "witness"
    torch.save({"w": torch.zeros(1), "x": _CreatesFile(witness)}, tmp_path / "witness.pth")
    torch.load(tmp_path / "witness.pth", weights_only=False)
    assert witness.exists()

    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _CreatesFile(target)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused to load.*could run code"):
        read_state_dict(path)
    assert not target.exists()


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match=r"broken\.safetensors: not a readable safetensors"):
        read_state_dict(tmp_path / "broken.safetensors")
    (tmp_path / "broken.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"broken\.pth: not a PyTorch checkpoint"):
        read_state_dict(tmp_path / "broken.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        read_state_dict(tmp_path / "list.pth")
    torch.save({"a": torch.zeros(1), "b": 3}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="entry 'b' is a int, not a tensor"):
        read_state_dict(tmp_path / "mixed.pth")


def test_pretrained_backbone_skips_the_head_and_foreign_tensors(tmp_path, source):
    state = source.state_dict()
    state["classifier.weight"] = torch.zeros(1000, 2048)  # an ImageNet head: ignored
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    target = HRNet(tiny_model_config(num_keypoints=14))
    untouched = load_pretrained(target, path)
    assert untouched == ["final_layer.weight", "final_layer.bias"]
    torch.testing.assert_close(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="no tensor matches"):
        load_pretrained(target, tmp_path / "foreign.pth")


def test_tf_port_weights_round_trip(tmp_path):
    """The TF port's head is named ``head``: not to be taken for MMPose's ``head.final_layer``."""
    model = build_model(tiny_model_config(num_keypoints=14, variant="tf_port"))
    save_weights(model, tmp_path / "tf_port.safetensors")
    again = build_model(tiny_model_config(num_keypoints=14, variant="tf_port"))
    load_weights(again, tmp_path / "tf_port.safetensors")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


class _RunsShell:
    """Unpickling this calls os.system: what a hostile checkpoint found in the wild does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt", ""])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_an_os_system_payload_is_refused_without_unsafe_advice(tmp_path, legacy, suffix):
    marker = tmp_path / "marker"
    path = tmp_path / f"evil{suffix}"
    torch.save(
        {"w": torch.zeros(1), "x": _RunsShell(f"touch {marker}")}, path, _use_new_zipfile_serialization=not legacy
    )
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert f"{path}: refused to load" in msg and "could run code" in msg and "posix.system" in msg
    assert "weights_only" not in msg and "safe_globals" not in msg
    assert not marker.exists()


def test_garbage_and_text_files_are_not_readable_checkpoints(tmp_path):
    (tmp_path / "notes.pth").write_text("these are my notes, not weights\n")
    with pytest.raises(CheckpointError, match=r"notes\.pth: not a PyTorch checkpoint"):
        read_state_dict(tmp_path / "notes.pth")
    (tmp_path / "json.pth").write_text('{"a": 1}')
    with pytest.raises(CheckpointError, match=r"json\.pth: not a PyTorch checkpoint") as err:
        read_state_dict(tmp_path / "json.pth")
    assert "weights_only" not in str(err.value)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth: .*empty"):
        read_state_dict(tmp_path / "empty.pth")
    # A pickle whose bytes are cut short: unreadable, never "could run code".
    for legacy in (True, False):
        torch.save({"w": torch.zeros(3)}, tmp_path / "whole.pth", _use_new_zipfile_serialization=not legacy)
        (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:40])
        with pytest.raises(CheckpointError, match=r"cut\.pth: not a readable PyTorch checkpoint") as err:
            read_state_dict(tmp_path / "cut.pth")
        assert "weights_only" not in str(err.value)


def _dataset_meta():
    """What MMPose 1.x stores under meta['dataset_meta']: NumPy arrays, dtypes and scalars."""
    return {
        "dataset_name": "coco",
        "num_keypoints": 17,
        "sigmas": np.array([0.026, 0.025, 0.025] + [0.035] * 14, dtype=np.float32),
        "flip_indices": np.arange(17),
        "keypoint_colors": np.zeros((17, 3), np.uint8),
        "skeleton_link_colors": np.zeros((19, 3), np.uint8),
        "joint_weights": np.ones(17, np.float32),
        "upper_body_ids": [0, 1, 2],
        "dtype": np.dtype("float32"),
        "scale": np.float64(1.25),
        "count": np.int64(149813),
        "flag": np.bool_(True),
        "names": np.array(["nose", "left_eye"]),
    }


def _mmpose_state(source, head: str) -> dict:
    state = {}
    for k, v in source.state_dict().items():
        state[k.replace("final_layer", head) if k.startswith("final_layer") else f"backbone.{k}"] = v
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_mmpose_1x_checkpoint_as_mmengine_saves_it(tmp_path, source, legacy):
    state = _mmpose_state(source, "head.final_layer")
    state["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53])
    checkpoint = {
        "meta": {
            "mmengine_version": "0.10.3",
            "epoch": 210,
            "iter": 491400,
            "seed": np.int64(21),
            "dataset_meta": _dataset_meta(),
            "experiment_name": "td-hm_hrnet-w32_8xb64-210e_coco-256x192",
        },
        "state_dict": state,
        "message_hub": {
            "log_scalars": {},
            "runtime_info": {"epoch": 210, "iter": 491400, "dataset_meta": _dataset_meta()},
            "resumed_keys": {"epoch": True, "iter": True},
        },
    }
    path = tmp_path / "td-hm_hrnet-w32.pth"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    before = torch.serialization.get_safe_globals()
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)
    # Nothing of NumPy's stays allowed after this one load (PyTorch may register its own types meanwhile).
    added = set(torch.serialization.get_safe_globals()) - set(before)
    assert not [g for g in added if "numpy" in repr(g)]
    with pytest.raises(pickle.UnpicklingError):  # still refused by a plain weights_only load afterwards
        torch.load(path, weights_only=True)


def test_mmpose_0x_checkpoint_with_keypoint_head(tmp_path, source):
    checkpoint = {
        "meta": {"mmcv_version": "1.3.8", "time": "Sat Jul 24 2021", "epoch": 210, "iter": 7800, "seed": np.int64(0)},
        "state_dict": _mmpose_state(source, "keypoint_head.final_layer"),
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4}]},
    }
    path = tmp_path / "hrnet_w32_coco_256x192-c78dce93_20200708.pth"
    torch.save(checkpoint, path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


def test_numpy_allowance_does_not_admit_other_objects(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "mixed.pth"
    torch.save({"meta": {"a": np.arange(3)}, "state_dict": {"w": torch.zeros(1)}, "x": _CreatesFile(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refused to load.*could run code"):
        read_state_dict(path)
    assert not marker.exists()


def test_user_safe_globals_are_kept(tmp_path, source):
    path = tmp_path / "mmpose.pth"
    torch.save({"meta": {"a": np.arange(3)}, "state_dict": _mmpose_state(source, "head.final_layer")}, path)
    torch.serialization.add_safe_globals([np.ndarray])
    try:
        load_weights(HRNet(tiny_model_config()), path)
        assert np.ndarray in torch.serialization.get_safe_globals()  # the caller's own allowance survives
    finally:
        torch.serialization.clear_safe_globals()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_non_finite_weights_are_refused(tmp_path, source, bad, suffix):
    state = source.state_dict()
    state["stage2.0.fuse_layers.0.1.1.weight"][3] = bad
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        model = HRNet(tiny_model_config())
        model.load_state_dict(state)
        save_weights(model, path)
    with pytest.raises(
        CheckpointError,
        match=r"w\.(pth|safetensors): tensor 'stage2\.0\.fuse_layers\.0\.1\.1\.weight' "
        r"holds 1 non-finite value",
    ):
        load_weights(HRNet(tiny_model_config()), path)


def test_a_suffix_in_capitals_is_the_same_format(tmp_path, source):
    """`model.SAFETENSORS` is a safetensors file, not "not a PyTorch checkpoint"."""
    path = tmp_path / "model.SAFETENSORS"
    save_weights(source, path)
    target = HRNet(tiny_model_config())
    load_weights(target, path)
    assert_same_weights(source, target)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.bool, torch.float8_e4m3fn])
def test_tensors_of_a_non_float_dtype_are_refused_by_name(tmp_path, source, suffix, dtype):
    """Float weights cast to int8 (no scales) and the like would load as other numbers without a word."""
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["stage3.0.branches.1.0.conv1.weight"] = state["stage3.0.branches.1.0.conv1.weight"].to(dtype)
    path = tmp_path / f"cast{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        CheckpointError, match=rf"cast{suffix}: tensor 'stage3\.0\.branches\.1\.0\.conv1\.weight' is {name}, "
    ):
        load_weights(HRNet(tiny_model_config()), path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_weights_of_any_width_are_converted(tmp_path, source, dtype):
    """float16/bfloat16/float64 files load into the float32 network; BatchNorm's int64 counters stay allowed."""
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.state_dict().items()}
    assert any(v.dtype == torch.int64 for v in state.values())
    save_file(state, str(tmp_path / "w.safetensors"))
    target = HRNet(tiny_model_config())
    load_weights(target, tmp_path / "w.safetensors")
    for name, value in target.state_dict().items():
        assert value.dtype == source.state_dict()[name].dtype
        torch.testing.assert_close(value, state[name].to(value.dtype), rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["hrnet", "tf_port", "litehrnet"])
def test_load_model_draws_no_random_weights_and_computes_what_a_copy_into_a_built_network_does(tmp_path, variant):
    """The network built without values and given a file's is the network ``load_weights`` fills, to the bit, in
    its outputs too (from a float32 safetensors file, and a float16 pickle without BatchNorm counters); the random
    generator is left where it was."""
    from tests.models.test_fuse import randomised

    config = tiny_model_config(14 if variant == "tf_port" else 17, variant)
    state = randomised(build_model(config)).state_dict()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({k: v.half() for k, v in state.items() if "num_batches_tracked" not in k}, tmp_path / "w.pth")
    x = torch.randn(1, 3, *config.input_size, generator=torch.Generator().manual_seed(0))
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        expected = build_model(config)
        load_weights(expected, path)
        rng = torch.random.get_rng_state()
        got = load_model(config, path)
        assert torch.equal(torch.random.get_rng_state(), rng)
        assert not got.training and all(p.requires_grad for p in got.parameters())
        assert_same_weights(expected, got)
        with torch.no_grad():
            assert torch.equal(got(x), expected.eval()(x))


@pytest.mark.parametrize("variant", ["hrnet", "litehrnet"])
def test_weights_read_channels_last_give_the_fast_path_to_the_bit(tmp_path, variant):
    """The fast path reads the file's conv weights straight into channels-last memory (one copy fewer at start):
    each 4-D weight is then channels-last in memory of its own, and the opened network computes exactly what
    preparing a contiguous one does."""
    from hrnet.models.fuse import prepare_for_inference
    from hrnet.runtime.backends import open_backend
    from tests.models.test_fuse import randomised

    config = tiny_model_config(17, variant)
    save_file(randomised(build_model(config)).state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_model(config, tmp_path / "w.safetensors", memory_format=torch.channels_last)
    plain = load_model(config, tmp_path / "w.safetensors")
    assert_same_weights(plain, loaded)
    for name, value in loaded.state_dict().items():
        layout = torch.channels_last if value.dim() == 4 else torch.contiguous_format
        assert value.is_contiguous(memory_format=layout), name
        assert value.untyped_storage().nbytes() == value.nbytes, name
    fast = open_backend(config, tmp_path / "w.safetensors", backend="pytorch-fast")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in fast.run.parameters() if p.dim() == 4)
    x = torch.randn(2, 3, *config.input_size, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fast(x), prepare_for_inference(plain, inplace=True)(x))


def test_weights_that_are_no_file_or_no_safetensors_say_so_and_not_that_they_say_nothing(tmp_path):
    from hrnet.errors import CheckpointError
    from hrnet.models.checkpoint import experiment_for

    pickle_named_safetensors = tmp_path / "w.safetensors"
    pickle_named_safetensors.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"w\.safetensors: not a readable safetensors file"):
        experiment_for(pickle_named_safetensors)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a named pipe"), (tmp_path, "a folder")):
        with pytest.raises(CheckpointError, match=rf"{kind}.*, not a weights file"):
            experiment_for(path)


def test_a_zip_bomb_named_pth_is_refused_before_anything_is_inflated(tmp_path, monkeypatch):
    """A small torch.save-shaped zip whose member inflates to far more than the file (deflated zeros): refused by
    its declared sizes, naming the file, before torch.load reads it; a real torch.save zip still loads."""
    import zipfile

    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
        with zf.open("archive/data/0", "w") as member:  # 64 MiB of zeros, about 64 KB deflated
            for _ in range(64):
                member.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20

    def never(*args, **kwargs):
        raise AssertionError("torch.load was reached")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError, match=r"bomb\.pth: refused before unpacking anything: a zip archive of .* kB "
                       r"whose members unpack to 67\.1 MB.*zip bomb") as err:  # fmt: skip
        read_state_dict(bomb)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    torch.save({"final_layer.weight": torch.ones(2, 3, 1, 1)}, tmp_path / "real.pth")
    assert read_state_dict(tmp_path / "real.pth")["final_layer.weight"].shape == (2, 3, 1, 1)


def test_a_full_disk_while_saving_weights_names_the_file_and_size_and_keeps_the_old_one(tmp_path, monkeypatch):
    """safetensors reports a full disk as its own SafetensorError quoting the system's error ("os error 28"): one
    OutputError naming the file and the bytes it needed; the earlier file is kept whole, no partial one is left."""
    from safetensors import SafetensorError

    from hrnet.errors import OutputError
    from hrnet.models import checkpoint

    model = HRNet(tiny_model_config())
    path = tmp_path / "best.safetensors"
    save_weights(model, path)
    before = path.read_bytes()
    needed = sum(t.numel() * t.element_size() for t in model.state_dict().values())

    def full(tensors, filename, metadata=None):
        pathlib.Path(filename).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OutputError) as err:
        save_weights(model, path)
    assert str(err.value).startswith(
        f"{path}: cannot write it (no space left on the device; it needs about {needed / 1e3:,.1f} kB); nothing "
        "partial was kept and nothing was replaced"
    )
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
