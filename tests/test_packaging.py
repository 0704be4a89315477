"""The set-up: PyTorch's CPU wheel index as a Makefile choice, the configs inside the package."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hrnet.cli import main
from hrnet.config import CONFIG_DIR, find_config, load_config
from hrnet.errors import ConfigError

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


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outside a clone: no configs/ folder here
    expected = CONFIG_DIR / "coco" / "w32_256x192.yaml"
    for name in ("coco/w32_256x192", "coco/w32_256x192.yaml", "configs/coco/w32_256x192.yaml"):
        assert find_config(name) == expected, name
    assert load_config("coco/w32_256x192").model.input_size == (256, 192)
    assert main(["info", "coco/w48_384x288"]) == 0 and "35.307 G" in capsys.readouterr().out
    shipped = r"cannot read the config \(no such file, nor one that ships with the package: aic/"
    with pytest.raises(ConfigError, match=rf"coco/w99\.yaml: {shipped}"):
        load_config("coco/w99.yaml")
    own = tmp_path / "coco" / "w32_256x192.yaml"  # a file of the user's own wins over the shipped one
    own.parent.mkdir()
    own.write_text("model:\n  input_size: [128, 96]\n")
    assert load_config("coco/w32_256x192.yaml").model.input_size == (128, 96)


@pytest.mark.slow
def test_the_wheel_carries_the_configs(tmp_path):
    """``pip wheel`` (no network: the build backend of this environment) packs every config beside the code. It
    builds a copy of the sources, so that nothing is written into the repository."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("hrnet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"hrnet/configs/{p.relative_to(CONFIG_DIR)}" for p in CONFIG_DIR.rglob("*.yaml")}
    assert len(shipped) >= 8 and shipped <= names
    assert "hrnet/configs/demo.yaml" in names and "hrnet/configs/coco/w32_256x192.yaml" in names
