"""Training checkpoints: everything a resumed run needs comes back exactly."""

import pytest
import torch

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
