"""The README and docs/ against the code, so that no documented command or figure goes stale.

Every ``hrnet ...`` command line in the ```bash blocks of README.md and docs/*.md (also ``python -m hrnet`` and
``torchrun ... -m hrnet``; comments, line continuations, ``VAR=value`` prefixes and pipes handled) is parsed by the
real parser, ``hrnet.cli.parse_args``: a usage error fails the test.

The cheap ones that need no download are also RUN, in the order of their page, inside ``tmp_path`` (the working
folder and ``$HRNET_CACHE`` there; their paths are relative, so nothing is written into the checkout):
``hrnet info PRESET ...``, ``hrnet weights list``, ``hrnet draw ...``, ``hrnet data synth ...`` (with 8 training
and 4 validation images, whatever counts the page gives) and ``hrnet data show ...``. Every other command is only
parsed: ``predict``, ``serve``, ``eval`` and ``export`` (they download weights or need photos and data sets),
``train``, ``demo`` and ``bench`` (minutes), ``weights get`` (a download), ``convert`` (a TensorFlow checkpoint)
and ``info`` of a config file that the page does not create.

Also: the ``make`` targets the pages name exist in the Makefile (and the README's two are the ones ``.ci/run`` and
the Makefile use), the ```python blocks compile, relative links point at files that exist, and the README stays
short.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from hrnet import cli
from hrnet.config import MODEL_PRESETS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
OWN_DATA = ROOT / "docs" / "own_data.md"  # run whole by its own test, on a real sample
README_MAX_LINES = 150
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SEPARATORS = {"|", "||", "&&", ";", "&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SYNTH_COUNTS = {"--train": "8", "--val": "4"}  # the demo's 4,000 + 500 images take minutes


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def blocks(text: str, language: str) -> list[str]:
    """The contents of the fenced blocks of ``language`` in a Markdown text."""
    return [body for lang, body in FENCE.findall(text) if lang == language]


def shell_commands(block: str) -> list[list[str]]:
    """The simple commands of a bash block as word lists: continuation lines joined, comments dropped, pipelines
    and lists (``|``, ``&&``, ``;``) split, leading ``VAR=value`` assignments removed."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        segment: list[str] = []
        for word in [*lexer, ";"]:
            if word in SEPARATORS:
                while segment and ASSIGNMENT.match(segment[0]):
                    segment.pop(0)
                if segment:
                    commands.append(segment)
                segment = []
            else:
                segment.append(word)
    return commands


def hrnet_argv(words: list[str]) -> list[str] | None:
    """The arguments of an ``hrnet`` command (``hrnet ...``, ``python -m hrnet ...``, ``torchrun ... -m hrnet
    ...``), or None for any other command."""
    if words[0] == "hrnet":
        return words[1:]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "hrnet":
            return words[i + 2 :]
    return None


def page_commands(page: Path) -> list[list[str]]:
    return [
        argv
        for block in blocks(page.read_text(encoding="utf-8"), "bash")
        for words in shell_commands(block)
        if (argv := hrnet_argv(words)) is not None
    ]


def runs(argv: list[str]) -> bool:
    """Whether a documented command is cheap and needs no download, so that the test runs it for real."""
    return (
        (argv[:1] == ["info"] and len(argv) > 1 and argv[1] in MODEL_PRESETS)
        or argv[:2] == ["weights", "list"]
        or argv[:1] == ["draw"]
        or argv[:2] in (["data", "synth"], ["data", "show"])
    )


def with_small_counts(argv: list[str]) -> list[str]:
    """``hrnet data synth`` with ``SYNTH_COUNTS`` in place of the page's counts."""
    kept: list[str] = []
    words = iter(argv)
    for word in words:
        if word in SYNTH_COUNTS:
            next(words, None)
        elif word.split("=", 1)[0] not in SYNTH_COUNTS:
            kept.append(word)
    return kept + [x for option, count in SYNTH_COUNTS.items() for x in (option, count)]


def test_the_extraction_reads_shell_as_written():
    block = (
        "hrnet predict a.jpg \\\n    --out results/   # a comment\n"
        "HRNET_CACHE=/tmp/c hrnet weights list | head -3 && make test\n"
        "torchrun --nproc_per_node=4 -m hrnet train w32\n"
        "curl -F 'boxes=[[1, 2, 3, 4]]' http://127.0.0.1:8000/v1/pose\n"
    )
    commands = shell_commands(block)
    assert commands == [
        ["hrnet", "predict", "a.jpg", "--out", "results/"],
        ["hrnet", "weights", "list"],
        ["head", "-3"],
        ["make", "test"],
        ["torchrun", "--nproc_per_node=4", "-m", "hrnet", "train", "w32"],
        ["curl", "-F", "boxes=[[1, 2, 3, 4]]", "http://127.0.0.1:8000/v1/pose"],
    ]
    assert [hrnet_argv(c) for c in commands] == [
        ["predict", "a.jpg", "--out", "results/"], ["weights", "list"], None, None, ["train", "w32"], None
    ]  # fmt: skip
    assert with_small_counts(["data", "synth", "--out", "d", "--train", "4000", "--val=500"]) == [
        "data", "synth", "--out", "d", "--train", "8", "--val", "4"
    ]  # fmt: skip


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_documented_command_parses(page, capsys):
    for argv in page_commands(page):
        try:
            cli.parse_args(argv)
        except SystemExit as exit_:
            err = capsys.readouterr().err.strip()
            pytest.fail(f"{_name(page)}: `hrnet {shlex.join(argv)}` does not parse (exit {exit_.code}): {err}")


def test_the_pages_show_the_commands_a_newcomer_needs():
    readme = page_commands(README)
    assert ["predict", "group.jpg"] in readme, "the README's first photo command is hrnet predict PHOTO alone"
    for command in ("predict", "serve", "train"):
        assert any(argv[0] == command for argv in readme), command
    assert sum(len(page_commands(page)) for page in PAGES) >= 40  # the extraction finds them all, not none


def test_the_cheap_commands_run(tmp_path, monkeypatch, capsys):
    from hrnet.cli import main

    docs = {p: p.stat().st_mtime_ns for p in (ROOT / "docs").iterdir()}
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache"))
    ran = []
    for page in [p for p in PAGES if p != OWN_DATA]:
        folder = tmp_path / page.stem
        folder.mkdir()
        monkeypatch.chdir(folder)
        for argv in filter(runs, page_commands(page)):
            assert not any(Path(word).is_absolute() for word in argv), f"{_name(page)}: {argv}: a path outside tmp"
            command = with_small_counts(argv) if argv[:2] == ["data", "synth"] else argv
            status = main(command)
            assert status == 0, f"{_name(page)}: `hrnet {shlex.join(argv)}` failed: {capsys.readouterr().err}"
            ran.append(argv)
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "docs").iterdir()} == docs  # the checkout's figures untouched
    kinds = {tuple(argv[:2]) if argv[0] in ("data", "weights") else argv[0] for argv in ran}
    assert kinds == {"info", ("weights", "list"), "draw", ("data", "synth"), ("data", "show")}, kinds


def _yaml_files(page: Path) -> dict[str, str]:
    """The ```yaml blocks of a page that name their file in a first-line comment (``# my_hands.yaml``)."""
    return {
        body.split("\n", 1)[0].lstrip("# ").strip(): body
        for body in blocks(page.read_text(encoding="utf-8"), "yaml")
        if body.startswith("# ")
    }


def test_the_own_data_recipe_runs_as_written(datasets_dir, tmp_path, monkeypatch, free_port, capsys):
    """docs/own_data.md on the real OneHand10K sample laid out as the page says (``my_data/``), every command of
    the page run in order. Only the network is shrunk for the test: the config's ``model`` becomes the tiny one
    and ``train`` one epoch from a random start (the page fine-tunes a downloaded body network for 60 epochs);
    ``hrnet serve`` runs in its own process on a free port until /healthz answers."""
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    import yaml

    from hrnet.cli import main
    from hrnet.keypoints import load_keypoint_set
    from tests.conftest import tiny_model_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HRNET_CACHE", str(tmp_path / "cache"))
    sample = datasets_dir / "onehand10k"
    (tmp_path / "my_data" / "images").mkdir(parents=True)
    for image in sample.glob("*.jpg"):
        (tmp_path / "my_data" / "images" / image.name).symlink_to(image)
    annotations = json.loads((sample / "test_onehand10k.json").read_text())
    for split in ("train", "val"):
        (tmp_path / "my_data" / f"{split}.json").write_text(json.dumps(annotations))
    boxes = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0} for a in annotations["annotations"]]
    (tmp_path / "hand_boxes.json").write_text(json.dumps(boxes))

    files = _yaml_files(OWN_DATA)
    assert set(files) == {"my_hands.yaml", "my_keypoints.yaml"}
    assert load_keypoint_set(_write(tmp_path / "my_keypoints.yaml", files["my_keypoints.yaml"])).task == "hand"
    config = yaml.safe_load(files["my_hands.yaml"])
    tiny = tiny_model_config()
    config["model"] = {"input_size": [64, 64], "stages": [dataclasses.asdict(s) for s in tiny.stages]}
    config["train"].update(epochs=1, lr_steps=[], batch_size=4, pretrained="")
    config["runtime"] = {"num_workers": 0, "device": "cpu"}
    _write(tmp_path / "my_hands.yaml", yaml.safe_dump(config))

    commands = page_commands(OWN_DATA)
    assert [argv[0] for argv in commands] == ["data", "train", "eval", "predict", "export", "bench", "serve"]
    for argv in commands[:-1]:
        assert main(argv) == 0, f"`hrnet {shlex.join(argv)}` failed: {capsys.readouterr().err}"
    assert len(json.loads((tmp_path / "predictions" / "784.jpg.json").read_text())[0]["keypoints"]) == 21 * 3
    assert json.loads((tmp_path / "my_eval" / "metrics.json").read_text())["main_metric"] == "PCK"

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "hrnet", *commands[-1], "--port", str(port)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as server:
        try:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=5) as answer:
                        assert json.load(answer)["keypoint_names"][0] == "wrist"
                        break
                except OSError:
                    assert time.monotonic() < deadline, "hrnet serve did not answer within 2 minutes"
                    time.sleep(0.3)
        finally:
            server.kill()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _make_targets() -> set[str]:
    rule = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)")  # "name:" starts a rule; "NAME := value" sets a variable
    return {m.group(1) for line in (ROOT / "Makefile").read_text().splitlines() if (m := rule.match(line))}


def test_make_targets_exist_and_the_readme_names_the_two_commands():
    targets = _make_targets()
    named = {
        next(w for w in words[1:] if not w.startswith("-") and "=" not in w)
        for page in PAGES
        for block in blocks(page.read_text(encoding="utf-8"), "bash")
        for words in shell_commands(block)
        if words[0] == "make"
    }
    assert named and named <= targets, named - targets
    readme = [words for block in blocks(README.read_text(encoding="utf-8"), "bash") for words in shell_commands(block)]
    assert ["make", "demo"] in readme and ["make", "test"] in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_python_snippets_compile(page):
    for i, block in enumerate(blocks(page.read_text(encoding="utf-8"), "python")):
        compile(block, f"{_name(page)}, python block {i + 1}", "exec")


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_point_at_files(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if "://" not in target and not target.startswith("#"):
            assert (page.parent / target.split("#")[0]).exists(), f"{_name(page)}: {target}"


def test_the_readme_is_short_and_says_hrnet_one_way():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert ".venv/bin/hrnet" not in text and "source .venv/bin/activate" in text
