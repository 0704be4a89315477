"""The pose ONNX runner (src/hrnet/runtime/onnx.py): a graph that is not a pose network is refused when the file is
opened, with the contract it breaks. The graphs are built with ``onnx.helper``: an exported HRNet is tested in
tests/runtime/test_export.py."""

import os
import re

import numpy as np
import pytest

from hrnet.errors import ConfigError
from hrnet.runtime.onnx import OnnxRunner, cpu_session_options

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

CONTRACT = r"needs one float32 input \(N, 3, H, W\) and float32 heatmaps \(N, K, h, w\) as its first output"


def _save(tmp_path, input_type, input_shape, output_shape, name="model.onnx", op="Identity"):
    """A one-node graph 'image' → 'heatmaps' (``op``: Identity, Flatten, or Cast to float for an integer input)."""
    attributes = {"to": TensorProto.FLOAT} if op == "Cast" else {}
    output_type = TensorProto.FLOAT if op == "Cast" else input_type
    graph = helper.make_graph(
        [helper.make_node(op, ["image"], ["heatmaps"], **attributes)],
        "pose",
        [helper.make_tensor_value_info("image", input_type, input_shape)],
        [helper.make_tensor_value_info("heatmaps", output_type, output_shape)],
    )
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(
    ("input_type", "input_shape", "output_shape", "op", "shown"),
    [
        (TensorProto.FLOAT, ["N", 3], ["N", 3], "Identity", r"takes 'image' tensor\(float\) \['N', 3\]"),
        (TensorProto.FLOAT, ["N", 3, 8, 8], ["N", 192], "Flatten", r"gives 'heatmaps' tensor\(float\) \['N', 192\]"),
        (TensorProto.UINT8, ["N", 3, 8, 8], ["N", 3, 8, 8], "Cast", r"takes 'image' tensor\(uint8\)"),
        (TensorProto.DOUBLE, ["N", 3, 8, 8], ["N", 3, 8, 8], "Identity", r"tensor\(double\)"),
    ],
)
def test_a_graph_that_is_not_a_pose_network_is_refused_when_opened(
    tmp_path, input_type, input_shape, output_shape, op, shown
):
    path = _save(tmp_path, input_type, input_shape, output_shape, op=op)
    with pytest.raises(ConfigError, match=rf"model\.onnx: not a pose network hrnet can run: it {CONTRACT}") as err:
        OnnxRunner(path)
    assert len(str(err.value).splitlines()) == 1
    assert re.search(shown, str(err.value))


def test_a_pose_shaped_graph_is_run(tmp_path):
    runner = OnnxRunner(_save(tmp_path, TensorProto.FLOAT, ["N", 3, 8, 8], ["N", 3, 8, 8]))
    images = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(runner(images), images)


def test_a_rank_2_pose_model_is_one_line_from_predict(tmp_path, capsys):
    """From the command line: exit 2 and one line, not a ValueError traceback at the first image."""
    import cv2

    from hrnet.cli import main
    from hrnet.config import ExperimentConfig, dump_config
    from tests.conftest import tiny_model_config

    config = tmp_path / "config.yaml"
    config.write_text(dump_config(ExperimentConfig(model=tiny_model_config())))
    model = _save(tmp_path, TensorProto.FLOAT, ["N", 3], ["N", 3], name="flat.onnx")
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 48, 3), 128, np.uint8))
    args = [
        "predict",
        str(config),
        "--weights",
        str(model),
        "--backend",
        "onnxruntime",
        "--detector",
        "none",
        "--out",
        str(tmp_path / "out"),
    ]
    args.append(str(image))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "flat.onnx: not a pose network" in err, err


def test_sessions_take_the_threads_of_hrnet_system(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_session_options(None).intra_op_num_threads == 3
    assert cpu_session_options(2).intra_op_num_threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_session_options(None).intra_op_num_threads == 0  # ONNX Runtime's own choice
