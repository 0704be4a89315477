"""The set-up: PyTorch's CPU wheel index as a Makefile choice, the configs inside the package."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands(*variables: str) -> str:
    return subprocess.run(
        ["make", "-n", "-B", "setup", *variables], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_setup_takes_torch_from_the_chosen_index():
    default = _setup_commands()
    assert 'pip install --quiet  "torch==2.13.0"' in default and "--index-url" not in default
    cpu = _setup_commands("TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert '--index-url "https://download.pytorch.org/whl/cpu" "torch==2.13.0"' in cpu
