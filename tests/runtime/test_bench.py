"""`hrnet bench`: images/s of the plain network, the fast path and ONNX Runtime, on a tiny network."""

import math
import time

import pytest

from hrnet.cli import main
from hrnet.config import ExperimentConfig, dump_config
from hrnet.errors import ConfigError
from hrnet.models.checkpoint import save_weights
from hrnet.models.complexity import count_macs
from hrnet.models.hrnet import build_model
from hrnet.runtime.bench import interleaved_seconds, measure_backends, plan_rounds
from tests.conftest import tiny_model_config


def test_interleaved_rounds_give_each_function_its_median():
    calls = {"a": 0, "b": 0, "c": 0}
    order: list[str] = []

    def counted(name, sleep=0.0):
        def fn():
            calls[name] += 1
            if not order or order[-1] != name:
                order.append(name)
            time.sleep(sleep)

        return fn

    fns = {"a": counted("a", sleep=0.002), "b": counted("b"), "c": counted("c")}
    # 0.05 s a round: a one-call estimate the machine delayed by more would make a round of one call (fewer rounds).
    seconds = interleaved_seconds(fns, rounds=3, seconds=0.05)
    assert set(seconds) == {"a", "b", "c"} and all(math.isfinite(s) and s > 0 for s in seconds.values())
    # Two warm-up calls, then as many calls a round as 0.05 s holds: up to 25 of a (at least 2 ms each), far more
    # of b, which does nothing.
    assert 2 + 3 * 1 <= calls["a"] <= 2 + 3 * 25 and calls["b"] > 2 + 3 * 25
    # Warm-up a, b, c; then each round starts one place later: a b c | b c a | c a b.
    assert "".join(order) == "abc" + "abc" + "bca" + "cab"
    # time.sleep waits at least as long as asked; a call that does nothing takes far less than 2 ms.
    assert seconds["a"] >= 0.002 > seconds["b"]


def test_rounds_keep_to_their_budget():
    # Fast functions: as many calls as `seconds` holds each a round, all the rounds asked for.
    plan = plan_rounds({"a": 0.03, "b": 0.002}, rounds=3, seconds=0.1)
    assert plan.calls == {"a": 3, "b": 50} and plan.rounds == 3 and plan.round_seconds == pytest.approx(0.19)
    # One call over `seconds`: once a round, and as many rounds as 3 × 1 s × 2 functions holds (6 // 2.5).
    plan = plan_rounds({"slow": 2.0, "fast": 0.5}, rounds=3, seconds=1.0)
    assert plan.calls == {"slow": 1, "fast": 2} and plan.rounds == 2 and plan.total_seconds == pytest.approx(6.0)
    # A call longer than the whole budget: still one round of one call each.
    plan = plan_rounds({"w48": 30.0}, rounds=3, seconds=2.0)
    assert plan.calls == {"w48": 1} and plan.rounds == 1 and plan.total_seconds == 30.0


def test_interleaved_timing_of_a_slow_function_keeps_to_the_budget(caplog):
    calls = {"slow": 0, "fast": 0}

    def sleeper(name, seconds):
        def fn():
            calls[name] += 1
            time.sleep(seconds)

        return fn

    start = time.perf_counter()
    with caplog.at_level("INFO", logger="hrnet.runtime.bench"):
        timed = interleaved_seconds({"slow": sleeper("slow", 0.1), "fast": sleeper("fast", 0.01)}, 3, 0.02)
    elapsed = time.perf_counter() - start
    # A round is one call of each, 0.1 s + 0.01 s, against a budget of 3 rounds × 0.02 s × 2 functions: one round,
    # not three (the two-calls-a-round minimum of before took 0.66 s for the rounds).
    assert calls == {"slow": 2 + 1, "fast": 2 + 1}
    assert timed["slow"] >= 0.1 and timed["fast"] >= 0.01
    assert 0.33 <= elapsed < 0.33 + 0.4, elapsed  # warm-up 0.22 s + the round 0.11 s, on a busy machine
    assert "2 configurations in 1 interleaved round of about 0.1 s (not 3: a round takes" in caplog.text


def test_measure_backends_times_every_backend(tmp_path):
    config = tiny_model_config()
    weights = tmp_path / "w.safetensors"
    model = build_model(config)
    save_weights(model, weights)
    names = ["pytorch", "pytorch-fast", "onnxruntime"]
    start = time.perf_counter()
    rows, _ = measure_backends(config, names, weights, batch=2, device="cpu", rounds=3, seconds=0.01)
    elapsed = time.perf_counter() - start
    assert [r.backend for r in rows] == names
    macs = count_macs(model, config.input_size)
    for row in rows:
        assert row.batch == 2 and math.isfinite(row.images_per_s), row
        # One call (2 images) lies inside the whole measurement, and no CPU runs a network this small at 10^12
        # multiply-adds a second: a backend timed as doing nothing fails here.
        assert row.batch / row.images_per_s < elapsed and row.images_per_s * macs < 1e12, row
    # Plain and fast path are the same PyTorch network in the same rounds (medians of three), within a few times of
    # each other. ONNX Runtime is left out: on a 2-core machine at load 7 PyTorch's threads wait on each other and
    # it measured 45× slower than ONNX Runtime, 3× between the two PyTorch paths.
    plain, fast = rows[0].images_per_s, rows[1].images_per_s
    assert plain / 50 < fast < plain * 50, rows
    with pytest.raises(ConfigError, match="batch and rounds"):
        measure_backends(config, names, batch=0)
    with pytest.raises(ConfigError, match=r"backend.*tensorrt"):
        measure_backends(config, ["tensorrt"])


def test_bench_command(tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config = ExperimentConfig(model=tiny_model_config())
    config_path.write_text(dump_config(config))
    args = ["bench", str(config_path), "--batch", "2", "--rounds", "1", "--seconds", "0.01", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "input 64×64, batch 2" in out and out.count("images/s") == 3
    with pytest.raises(SystemExit) as refused:  # a bad option is one clear line, not a traceback
        main([*args[:2], "--batch", "0"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and "argument --batch: '0' is not a whole number" in err
