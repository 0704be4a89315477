"""Training checkpoints: everything a resumed run needs comes back exactly."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hrnet.engine.state import TrainingState, load_training_checkpoint, save_training_checkpoint
from hrnet.errors import CheckpointError
from hrnet.models.checkpoint import read_state_dict, save_weights
from hrnet.models.hrnet import HRNet
from tests.conftest import tiny_model_config


def _parts(seed: int):
    torch.manual_seed(seed)
    model = HRNet(tiny_model_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return model, optimizer, scheduler, scaler


def _train_step(model, optimizer):
    loss = model(torch.randn(2, 3, 64, 64)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_round_trip_continues_identically(tmp_path):
    model, optimizer, scheduler, scaler = _parts(0)
    for _ in range(2):
        _train_step(model, optimizer)
        scheduler.step()
    state = TrainingState(epoch=2, step=5, global_step=17, best_metric=0.5, best_epoch=1, history=[{"epoch": 1}])
    path = tmp_path / "last.safetensors"
    save_training_checkpoint(
        path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, state=state, config={"a": 1}
    )
    torch.manual_seed(123)
    _train_step(model, optimizer)  # the reference continuation
    scheduler.step()
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model2, optimizer2, scheduler2, scaler2 = _parts(1)  # different weights to start from
    restored, config = load_training_checkpoint(
        path, model=model2, optimizer=optimizer2, scheduler=scheduler2, scaler=scaler2
    )
    assert restored == state and config == {"a": 1}
    assert scheduler2.last_epoch == 2 and scheduler2.milestones == scheduler.milestones
    torch.manual_seed(123)
    _train_step(model2, optimizer2)
    scheduler2.step()
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(1e-4)
    for k, v in model2.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0, msg=k)


def test_a_training_checkpoint_is_also_a_weights_file(tmp_path):
    model, optimizer, scheduler, scaler = _parts(0)
    _train_step(model, optimizer)
    path = tmp_path / "last.safetensors"
    save_training_checkpoint(
        path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, state=TrainingState(), config={}
    )
    assert set(read_state_dict(path)) == set(model.state_dict())


def test_plain_weights_are_not_a_training_checkpoint(tmp_path):
    model, optimizer, scheduler, scaler = _parts(0)
    save_weights(model, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_training_checkpoint(
            tmp_path / "w.safetensors", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_training_checkpoint(
            tmp_path / "bad.safetensors", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )


def _saved(tmp_path, num_keypoints: int = 17):
    torch.manual_seed(0)
    model = HRNet(tiny_model_config(num_keypoints=num_keypoints))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    _train_step(model, optimizer)
    path = tmp_path / "last.safetensors"
    config = {"model": {"num_keypoints": num_keypoints}}
    save_training_checkpoint(
        path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, state=TrainingState(), config=config
    )
    return path


def _rewrite(path, edit_meta=None, state_text=None, edit_tensors=None):
    """Re-save a training checkpoint with its state JSON or tensors changed."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if edit_meta is not None:
        meta = json.loads(metadata["state"])
        edit_meta(meta)
        metadata["state"] = json.dumps(meta)
    if state_text is not None:
        metadata["state"] = state_text
    if edit_tensors is not None:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata=metadata)


def _load(path):
    model, optimizer, scheduler, scaler = _parts(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        return load_training_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    finally:  # a refused file leaves the model as it was: nothing is half-restored
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _parts_k(num_keypoints: int):
    model = HRNet(tiny_model_config(num_keypoints=num_keypoints))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.1)
    return model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False)


def test_malformed_state_json_names_the_file(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, state_text='{"epoch": 1, "step"')
    with pytest.raises(CheckpointError, match=r"last\.safetensors: the training state .*is not valid JSON"):
        _load(path)
    _rewrite(path, state_text="[1, 2]")
    with pytest.raises(CheckpointError, match=r"last\.safetensors: the training state .*is not a JSON object"):
        _load(path)


@pytest.mark.parametrize("key", ["epoch", "optimizer", "scheduler", "scaler", "config", "history", "best_metric"])
def test_a_missing_section_is_named(tmp_path, key):
    path = _saved(tmp_path)
    _rewrite(path, edit_meta=lambda meta: meta.pop(key))
    with pytest.raises(CheckpointError, match=rf"last\.safetensors: the training state lacks {key!r}"):
        _load(path)


def test_ill_typed_sections_are_named(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, edit_meta=lambda meta: meta.update(epoch="three"))
    with pytest.raises(CheckpointError, match=r"last\.safetensors: the training state's 'epoch' must be"):
        _load(path)
    path = _saved(tmp_path)
    _rewrite(path, edit_meta=lambda meta: meta["optimizer"].pop("param_groups"))
    with pytest.raises(CheckpointError, match=r"last\.safetensors: the training state lacks 'optimizer\.param_groups'"):
        _load(path)
    path = _saved(tmp_path)
    _rewrite(path, edit_tensors=lambda tensors: tensors.pop("rng.torch"))
    with pytest.raises(CheckpointError, match=r"last\.safetensors: .*lacks the tensor 'rng\.torch'"):
        _load(path)


def test_another_keypoint_count_is_refused_before_anything_is_loaded(tmp_path):
    path = _saved(tmp_path, num_keypoints=17)
    model, optimizer, scheduler, scaler = _parts_k(14)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        CheckpointError,
        match=r"last\.safetensors: saved by a run whose model predicts 17 keypoints; "
        r"this model predicts 14",
    ):
        load_training_checkpoint(
            path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, num_keypoints=14
        )
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match=r"last\.safetensors: 2 tensors do not fit the model .*final_layer"):
        load_training_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_non_finite_weights_in_a_training_checkpoint_are_refused(tmp_path):
    path = _saved(tmp_path)

    def poison(tensors):
        tensors["model.final_layer.bias"][0] = float("nan")

    _rewrite(path, edit_tensors=poison)
    with pytest.raises(CheckpointError, match=r"last\.safetensors: tensor 'model\.final_layer\.bias' holds 1 non-fin"):
        _load(path)
