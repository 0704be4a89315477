"""Weights I/O: official .pth forms, MMPose names, our safetensors, and refusing unsafe pickles."""

import pathlib

import pytest
import torch

from hrnet.errors import CheckpointError
from hrnet.models.checkpoint import load_pretrained, load_weights, read_state_dict, save_weights
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
    with pytest.raises(CheckpointError, match=r"broken\.pth: not a readable PyTorch checkpoint"):
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
