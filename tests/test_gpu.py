"""On a CUDA device (skipped without one): every PyTorch backend against the CPU's fp32 network, and training with
mixed precision (AMP in fp16/bf16, and ``train.precision: bf16``) followed by evaluation, on synthetic data."""

import numpy as np
import pytest
import torch

from hrnet.config import ExperimentConfig, load_config
from hrnet.runtime.backends import BACKENDS, open_backend
from tests.conftest import TRAINED

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# The demo network's heatmaps on the GPU against the CPU's fp32 ones, as a fraction of the largest |heatmap|. fp32:
# cuDNN's convolutions may compute in TF32 (PyTorch allows it for convolutions by default; a 10-bit mantissa,
# about 1e-3); bf16: an 8-bit mantissa.
GPU_TOLERANCE = {"fp32": 5e-3, "bf16": 0.05}


@pytest.mark.parametrize("name", [n for n, e in BACKENDS.items() if "cuda" in e.devices])
def test_pytorch_backends_on_cuda_match_the_cpu(name, synthetic_experiment):
    from hrnet.engine.evaluate import Evaluator

    config = synthetic_experiment
    evaluator = Evaluator.from_config(config, torch.device("cpu"), progress=False)
    crops = torch.stack([evaluator.dataset[i].image for i in range(8)])
    cpu = open_backend(config.model, TRAINED, backend="pytorch", device="cpu")
    gpu = open_backend(config.model, TRAINED, backend=name, device="cuda")
    assert gpu.device.type == "cuda"
    with torch.inference_mode():
        expected, got = cpu(crops), gpu(crops.cuda()).float().cpu()
    error = float((got - expected).abs().max() / expected.abs().max())
    assert error <= GPU_TOLERANCE[gpu.precision], (name, error)
    gpu_keypoints = Evaluator.from_config(config, gpu.device, progress=False).predict(gpu).keypoints
    distance = np.linalg.norm(gpu_keypoints - evaluator.predict(cpu).keypoints, axis=-1)
    assert float(distance.mean()) <= (0.05 if gpu.precision == "fp32" else 0.2), name


@pytest.mark.parametrize(("precision", "amp"), [("fp32", False), ("fp32", True), ("bf16", False)])
def test_training_on_cuda_then_evaluation(precision, amp, synthetic_experiment, tmp_path):
    from hrnet.engine.train import train

    config: ExperimentConfig = load_config(
        None,
        [
            f"train.out_dir={tmp_path}",
            "train.name=gpu",
            "train.epochs=2",
            "train.lr_steps=[1]",
            "train.batch_size=8",
            f"train.precision={precision}",
            f"runtime.amp={amp}",
            "runtime.device=cuda",
        ],
        base=synthetic_experiment,
    )
    result = train(config, progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0], result.history
    assert (result.run_dir / "best.safetensors").is_file()
    assert next(result.model.parameters()).device.type == "cuda"
