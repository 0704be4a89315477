"""The typed config: YAML in, every key and type checked, invariants enforced, --set overrides."""

import dataclasses
import re
import time
from pathlib import Path

import pytest

from hrnet.config import (
    CONFIG_DIR,
    ZOO_DECODINGS,
    ZOO_DIR,
    ExperimentConfig,
    ModelConfig,
    StageConfig,
    config_from_text,
    dump_config,
    find_config,
    hrnet_stages,
    is_config_name,
    load_config,
    model_preset,
    shipped_configs,
    short_repr,
    zoo_data_sets,
)
from hrnet.errors import ConfigError
from hrnet.hub.registry import DECODINGS

CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if ZOO_DIR not in p.parents)  # the zoo's parts: below


def test_the_official_recipes_are_all_there():
    names = {str(p.relative_to(p.parents[1])) for p in CONFIGS}
    assert {
        "coco/w32_256x192.yaml",
        "coco/w32_384x288.yaml",
        "coco/w48_256x192.yaml",
        "coco/w48_384x288.yaml",
        "mpii/w32_256x256.yaml",
        "aic/tf_w32_256x192.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    config = load_config(path)
    copy = tmp_path / "copy.yaml"
    copy.write_text(dump_config(config))
    assert load_config(copy) == config


def test_recipes_hold_the_official_values():
    w48 = load_config(Path(CONFIGS[0]).parents[1] / "coco" / "w48_384x288.yaml")
    assert w48.model == dataclasses.replace(model_preset("w48"), input_size=(384, 288))
    assert w48.model.heatmap_size == (96, 72)
    assert (w48.data.sigma, w48.train.batch_size, w48.train.lr_steps) == (3.0, 24, (170, 200))
    mpii = load_config(Path(CONFIGS[0]).parents[1] / "mpii" / "w32_256x256.yaml")
    assert (mpii.model.num_keypoints, mpii.data.rotation_factor, mpii.data.scale_factor) == (16, 30.0, 0.25)
    aic = load_config(Path(CONFIGS[0]).parents[1] / "aic" / "tf_w32_256x192.yaml")
    assert aic.model == model_preset("tf_w32") and aic.data.target == "tf_port"


def test_defaults_are_the_coco_w32_recipe():
    config = ExperimentConfig()
    assert config.model == model_preset("w32")
    assert config.model.heatmap_size == (64, 48)
    assert (config.train.lr, config.train.epochs, config.data.scale_factor) == (1e-3, 210, 0.35)


def test_unknown_key_names_the_dotted_path_and_the_nearest_key(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown config key 'train\.learning_rate'.*valid keys"):
        load_config(path)
    path.write_text("data:\n  scale_facter: 0.1\n")
    with pytest.raises(ConfigError, match=r"'data\.scale_facter'; did you mean 'data\.scale_factor'\?"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=1.5", r"train\.epochs: expected an integer, got 1\.5"),
        ("runtime.amp=yes please", r"runtime\.amp: expected true or false"),
        ("train.device=cpu", r"config key 'train\.device' has moved: write it as 'runtime\.device'"),
        ("model.pretrained=w.pth", r"config key 'model\.pretrained' has moved: write it as 'train\.pretrained'"),
        ("train.lr=fast", r"train\.lr: expected a number, got 'fast'"),
        ("model.input_size=[256]", r"model\.input_size: expected 2 values, got 1"),
        ("model.stages.1.num_channels=[8]", r"model\.stages\.1: num_channels has 1 entries but num_branches is 2"),
        ("model.stages=[]", r"HRNet has 4 stages, got 0"),
        ("model.input_size=[250,192]", r"input_size must be multiples of 32"),
        ("train.lr_steps=[200,170]", r"lr_steps must be increasing"),
        ("data.target=tf_port", r"needs model\.variant tf_port"),
        ("test.decode=soft", r"test\.decode: must be one of \['argmax', 'dark', 'tf_port'\], got 'soft'"),
        ("test.dark_blur_kernel=8", r"dark_blur_kernel must be 0 \(2·round\(3σ\) − 1 of data\.sigma\) or an odd"),
        ("test.dark_blur_kernel=-1", r"dark_blur_kernel must be 0 .* an odd size from 1 to 599 .*, got -1$"),
        ("test.dark_blur_kernel=601", r"dark_blur_kernel must be 0 .* got 601$"),
        ("model.stages.1.block=dense", r"model\.stages\.1\.block: must be one of \['basic', 'bottleneck'\]"),
        ("model.batch_norm=batch", r"batch_norm 'batch' reproduces the TF port's .* only for variant tf_port"),
        ("model.batch_norm=frozen", r"model\.batch_norm: must be one of \['running', 'batch'\], got 'frozen'"),
        ("train=5", r"^train: expected a mapping, got 5$"),
        ("data.sigmas=12", r"^data\.sigmas: expected a list, got 12$"),
        ("train.name.x=1", r"train\.name is a value, not a section"),
        ("model.stages.9.block=basic", r"model\.stages has no item '9'"),
        ("novalue", r"expected KEY=VALUE"),
        ("train.momentum=-5", r"^train: momentum must be in \[0, 1\), .* got -5\.0, 0\.0 and 0\.1$"),
        ("train.weight_decay=-1", r"weight_decay ≥ 0 .* got 0\.9, -1\.0 and 0\.1$"),
        ("train.lr_factor=0", r"lr_factor in \(0, 1\]"),
        ("model.stages.3.num_modules=1000000", r"would hold about 10\^12 weights, over the 2,000,000,000"),
        ("model.stages.3.num_blocks=[4,4,4,100000]", r"would hold about 10\^11 weights"),
        (f"model.stages.3.num_modules={10**400}", r"would hold about 10\^40\d weights"),
    ],
)
def test_bad_values_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_overrides_parse_yaml_values_and_index_lists():
    config = load_config(None, ["train.lr=5e-4", "model.stages.1.num_channels=[16, 32]", "test.flip_test=false"])
    assert config.train.lr == 5e-4
    assert config.model.stages[1].num_channels == (16, 32)
    assert config.test.flip_test is False


def test_unreadable_or_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read the config"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML: line 2, column 1: expected ',' or ']'") as err:
        load_config(bad)
    assert "\n" not in str(err.value)  # one line, without PyYAML's quoted excerpt
    with pytest.raises(ConfigError, match=r"--set 'train.lr=\[': not valid YAML: line 1, column") as err:
        load_config(None, ["train.lr=["])
    assert "\n" not in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_configs_are_frozen_and_varied_by_replace():
    cfg = model_preset("w32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_keypoints = 3  # type: ignore[misc]
    assert dataclasses.replace(cfg, num_keypoints=14).num_keypoints == 14
    assert model_preset("w32").num_keypoints == 17


def test_presets_and_stage_invariants():
    assert model_preset("w18").stages[3].num_channels == (18, 36, 72, 144)
    assert model_preset("w48").stages == hrnet_stages(48)
    with pytest.raises(ConfigError, match="did you mean 'w48'"):
        model_preset("w84")
    with pytest.raises(ConfigError, match="num_blocks has 2 entries but num_branches is 1"):
        StageConfig(num_modules=1, num_branches=1, block="basic", num_blocks=(1, 1), num_channels=(8,))
    stages = list(hrnet_stages(32))
    stages[0] = dataclasses.replace(stages[0], num_modules=2)
    with pytest.raises(ConfigError, match="stage 1 is a single stack"):
        ModelConfig(stages=tuple(stages))


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN", "nan", "inf", "1e999"])
@pytest.mark.parametrize("key", ["train.lr", "data.sigma", "test.oks_threshold", "data.sigmas"])
def test_non_finite_numbers_are_refused(value, key, tmp_path):
    override = f"{key}=[{value}]" if key == "data.sigmas" else f"{key}={value}"
    with pytest.raises(ConfigError, match=re.escape(key) + r"(\.0)?: expected a finite number"):
        load_config(None, [override])
    path = tmp_path / "x.yaml"
    section, name = key.split(".")
    path.write_text(f"{section}:\n  {name}: {'[' + value + ']' if name == 'sigmas' else value}\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: .*expected a finite number"):
        load_config(path)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_seed_must_fit_every_generator(seed):
    with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*32 - 1\]"):
        load_config(None, [f"train.seed={seed}"])
    assert load_config(None, [f"train.seed={2**32 - 1}"]).train.seed == 2**32 - 1


def test_non_utf8_and_deeply_nested_yaml(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("train:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text .*byte 0xe9 at position 18.*save it as UTF-8"):
        load_config(latin)
    deep = tmp_path / "deep.yaml"
    deep.write_text("train: " + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: .*nested too deeply"):
        load_config(deep)
    with pytest.raises(ConfigError, match=r"--set .*nested too deeply"):
        load_config(None, ["train.name=" + "[" * 5_000 + "]" * 5_000])


def test_size_mismatch_setting():
    assert ExperimentConfig().data.size_mismatch == "error"
    assert load_config(None, ["data.size_mismatch=warn"]).data.size_mismatch == "warn"
    with pytest.raises(ConfigError, match=r"data\.size_mismatch: must be one of \['error', 'warn'\], got 'ignore'"):
        load_config(None, ["data.size_mismatch=ignore"])


def test_a_stage_without_its_required_keys_names_them():
    with pytest.raises(ConfigError, match=r"model\.stages\.1\.num_modules: missing.*; model\.stages\.1\.num_bra"):
        load_config(None, ["model.stages.1={}"])


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("test:\n  decode: dark\ntrain:\n  lr: 0.001\ntest:\n  flip_test: false\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: .*line 5, column 1: the key 'test' is given twice .*1 and 5"):
        load_config(path)
    path.write_text("data:\n  sigma: 2.0\n  flip: true\n  sigma: 3.0\n")
    with pytest.raises(ConfigError, match=r"the key 'sigma' is given twice .*lines 2 and 4"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set .*the key 'block' is given twice .*lines 1 and 1"):
        load_config(None, ["model.stages.1={block: basic, block: bottleneck}"])
    # A merge key is not a key: the mapping's own keys override what it merges in, as YAML says.
    path.write_text("data:\n  <<: {sigma: 2.0, flip: false}\n  sigma: 3.0\n")
    assert load_config(path).data.sigma == 3.0


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML flow list whose last anchor expands to width ** levels values (9 levels of 9: 387 million)."""
    anchors = ["&a0 [" + ", ".join(["x"] * width) + "]"]
    anchors += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(anchors) + "]"


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    # PyYAML shares an anchor's value among its aliases, and no config value nests deep enough to expand it.
    path = tmp_path / "bomb.yaml"
    for key in ("train.name", "data.sigmas", "model.stages"):
        section, name = key.split(".")
        path.write_text(f"{section}:\n  {name}: {_alias_bomb()}\n")
        for source, overrides in ((path, []), (None, [f"{key}={_alias_bomb()}"])):
            started = time.perf_counter()
            with pytest.raises(ConfigError, match=re.escape(key) + r"(\.0)?: expected a (string|number|mapping)"):
                load_config(source, overrides)
            assert time.perf_counter() - started < 1.0
    path.write_text("train:\n  name: &a [*a]\n")  # an alias inside its own anchor: endless
    with pytest.raises(ConfigError, match=r"bomb\.yaml: train\.name: expected a string, got \[\[\[\[\.\.\.\]\]\]\]"):
        load_config(path)
    # A config with a few anchors still loads.
    path.write_text(
        "model:\n  stages:\n"
        "    - {num_modules: 1, num_branches: 1, block: bottleneck, num_blocks: [1], num_channels: [8]}\n"
        "    - &stage {num_modules: 1, num_branches: 2, block: basic, num_blocks: &two [1, 1], num_channels: [8, 16]}\n"
        "    - {<<: *stage, num_branches: 3, num_blocks: [1, 1, 1], num_channels: [8, 16, 32]}\n"
        "    - {<<: *stage, num_branches: 4, num_blocks: [1, 1, 1, 1], num_channels: [8, 16, 32, 64]}\n"
        "data:\n  sigmas: &s [0.5, 0.5]\n"
        "test:\n  batch_size: &n 4\ntrain:\n  batch_size: *n\n"
    )
    config = load_config(path)
    assert config.model.stages[3].block == "basic" and config.model.stages[1].num_blocks == (1, 1)
    assert config.train.batch_size == config.test.batch_size == 4


def test_a_config_recorded_in_a_weights_file_is_small_and_has_no_aliases():
    recorded = dump_config(ExperimentConfig(model=model_preset("w18")))
    assert config_from_text(recorded, "w.safetensors", ["train.lr=5e-4"]).model == model_preset("w18")
    with pytest.raises(ConfigError, match=r"^w\.safetensors: 70,000 characters, over the 65,536 of a config$"):
        config_from_text("#" * 70_000, "w.safetensors")
    with pytest.raises(ConfigError, match=r"^w\.safetensors: the YAML uses aliases \(\*name\), which hrnet"):
        config_from_text("test:\n  batch_size: &n 4\ntrain:\n  batch_size: *n\n", "w.safetensors")
    with pytest.raises(ConfigError, match=r"^w\.safetensors: not valid YAML: line 1, column 9: expected"):
        config_from_text("train: [", "w.safetensors")


def test_an_integer_of_5000_digits_is_one_clear_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("test:\n  batch_size: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: not valid YAML: .*4300 digits") as err:  # Python's own limit
        load_config(path)
    assert len(str(err.value)) < 300
    with pytest.raises(ConfigError, match=r"--set .*: not valid YAML: .*4300 digits") as err:
        load_config(None, ["test.batch_size=" + "9" * 5000])
    assert len(str(err.value)) < 500


@pytest.mark.parametrize(
    "override",
    [
        "train.name=[" + "1, " * 5000 + "2]",  # expected a string, got a list
        "test.decode=" + "x" * 5000,  # not one of the choices
        "train." + "k" * 5000 + "=1",  # an unknown key
        "train.epochs=" + "'" + "9" * 5000 + "'",  # a string where an integer goes
        "novalue" * 1000,  # not KEY=VALUE
        "train.lr=[" * 100,  # not valid YAML
    ],
)
def test_messages_quote_at_most_200_characters_of_a_value(override):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    message = str(err.value)
    assert "\n" not in message
    assert not any(override[i : i + 201] in message for i in range(len(override) - 200))


def test_short_repr_is_bounded_for_any_value():
    assert short_repr("abc") == "'abc'"
    assert len(short_repr("x" * 10_000)) <= 200
    assert len(short_repr([list(range(1000))] * 1000)) <= 200


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.box_padding=1e-300", r"box_padding must be within \[0\.1, 10\] .*got 1e-300"),
        ("data.box_padding=1e300", r"box_padding must be within"),
        ("data.sigma=1e-300", r"sigma must be within \[0\.25, 100\]"),
        ("data.sigma=1e300", r"sigma must be within"),
        ("data.scale_factor=1.0", r"scale_factor must be in \[0, 1\): crops are scaled by 1 ± it"),
        ("data.scale_factor=-0.5", r"scale_factor must be in \[0, 1\)"),
        ("data.rotation_factor=1e308", r"rotation_factor must be within \[0, 180\]"),
        ("data.rotation_factor=-45", r"rotation_factor must be within"),
    ],
)
def test_crop_numbers_that_make_an_empty_or_endless_crop_are_refused(override, message):
    with pytest.raises(ConfigError, match=r"data: " + message):
        load_config(None, [override])


def test_the_crop_bounds_hold_the_values_in_use():
    for override in ("data.box_padding=1.0", "data.box_padding=2", "data.sigma=1.0", "data.scale_factor=0.5"):
        load_config(None, [override])


def test_a_config_path_that_never_ends_is_refused_unread(tmp_path):
    with pytest.raises(ConfigError, match=r"^/dev/zero: over 1,048,576 bytes, far more than a config holds"):
        load_config("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: over 1,048,576 bytes"):
        load_config(big)
    assert load_config(None).model.stages[3].num_modules == 3  # HRNet-W48/W32's sizes are far below the bound


def test_a_folder_named_dot_is_no_config_name():
    assert find_config(".") == Path(".") and find_config("..") == Path("..")  # `hrnet predict . --out .`


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("test.oks_threshold=-1", r"oks_threshold must be within \[1e-06, 1\]"),
        ("test.in_vis_threshold=2", r"in_vis_threshold must be within \[0, 1\]"),
        ("data.sigmas=[0.025, -0.1]", r"sigmas are OKS sigmas, each in \(0, 10\]"),
        ("train.name=../x", r"train.name must be a folder name inside train.out_dir"),
        ("train.name=/tmp/x", r"train.name must be a folder name inside train.out_dir"),
    ],
)
def test_values_that_would_silently_change_a_metric_or_leave_the_run_folder_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


# ------------------------------------------------------------------ the model zoo's configs, built by name


@pytest.mark.parametrize("data_set", zoo_data_sets())
def test_every_zoo_data_set_builds_a_config_that_round_trips(data_set, tmp_path):
    """Each data set of configs/zoo/ gives a config at any width, size and decoding; the config written out reads
    back as itself, and its network predicts its keypoint set's count."""
    for leaf in ("w32_256x192", "w48_384x288_dark", "w32_256x256_udp"):
        config = load_config(f"{data_set}/{leaf}")
        assert config.train.name == f"{data_set}_{leaf}"
        copy = tmp_path / "copy.yaml"
        copy.write_text(dump_config(config))
        assert load_config(copy) == config


def test_a_zoo_config_is_mmposes_recipe_the_data_set_and_the_name():
    """Values written out by hand from MMPose's configs (tag v0.29.0 / v1.3.2, as each zoo file cites)."""
    ap10k = load_config("ap10k/w32_256x256")
    assert ap10k.model == dataclasses.replace(model_preset("w32"), input_size=(256, 256), num_keypoints=17)
    assert (ap10k.data.keypoint_set, ap10k.data.root, ap10k.data.val_annotations, ap10k.data.val_images) == (
        "ap10k17", "data/ap10k", "annotations/ap10k-val-split1.json", "data"
    )  # fmt: skip
    assert (ap10k.train.lr, ap10k.train.epochs, ap10k.train.lr_steps, ap10k.train.batch_size) == (
        5e-4,
        210,
        (170, 200),
        64,
    )
    assert (ap10k.data.rotation_factor, ap10k.data.scale_factor, ap10k.data.half_body_prob) == (40.0, 0.5, 0.3)
    assert (ap10k.data.sigma, ap10k.data.target, ap10k.test.decode, ap10k.test.shift_heatmap) == (
        2.0, "gaussian", "argmax", True
    )  # fmt: skip
    wholebody = load_config("coco_wholebody/w48_384x288_dark")  # hrnet_w48_coco_wholebody_384x288_dark.py
    assert wholebody.model.num_keypoints == 133 and wholebody.model.stages[3].num_channels == (48, 96, 192, 384)
    assert (wholebody.data.sigma, wholebody.test.decode, wholebody.test.shift_heatmap) == (3.0, "dark", True)
    fashion = load_config("deepfashion_upper/w48_256x192_udp")  # td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_upper
    assert (fashion.model.num_keypoints, fashion.data.half_body_prob) == (6, -1.0)
    assert (fashion.data.target, fashion.test.decode, fashion.test.shift_heatmap) == ("udp", "dark", False)
    assert load_config("posetrack18/w32_384x288").data.sigma == 2.0  # its file fixes σ: MMPose's 384x288 too
    assert load_config("posetrack18/w32_384x288").train.lr_steps == (10, 15)
    assert load_config("atrw/w32_256x256").data.box_padding == 1.0  # MMPose's padding for ATRW
    assert load_config("animalkingdom_p3_fish/w32_256x256").train.epochs == 300
    assert load_config("mpii/w32_256x256_dark").data.format == "mpii"
    assert load_config("ap10k/w32_256x256", ["train.lr=1e-3", "data.sigma=3"]).train.lr == 1e-3  # --set applies
    assert set(ZOO_DECODINGS) == set(DECODINGS)  # a registered file's decoding names its config's test settings


def test_registered_weights_names_read_their_shipped_config():
    """A name from `hrnet weights list` is a config: its entry's, by any loader; --set applies over it."""
    named = load_config("mmpose-hrnet-w32-ap10k-256x256", ["test.flip_test=false"])
    assert named == load_config("ap10k/w32_256x256", ["test.flip_test=false"])
    assert load_config("mmpose-hrnet-w48-coco-384x288-dark") == load_config(
        CONFIG_DIR / "coco" / "w48_384x288_dark.yaml"
    )
    for name in ("mmpose-hrnet-w32-ap10k-256x256", "ap10k/w32_256x256", "coco/w32_256x192", "w32"):
        assert is_config_name(name), name
    for word in ("photo.jpg", "rtmdet-nano-person", "ap10k/w32", "zoo/ap10k", "nosuch/w32_256x192", "0"):
        assert not is_config_name(word), word
    with pytest.raises(ConfigError, match=r"unknown model preset 'mmpose-hrnet-w32-ap10k-256x25'.*"
                       r"or the registered weights name 'mmpose-hrnet-w32-ap10k-256x256'\?"):  # fmt: skip
        load_config("mmpose-hrnet-w32-ap10k-256x25")


def test_the_zoos_parts_are_no_configs_of_their_own():
    """configs/zoo/ holds parts: not found by a short name, not listed as shipped configs; a name's width and size
    are checked with the name in the message."""
    assert find_config("zoo/ap10k") == Path("zoo/ap10k")
    assert not any(name.startswith("zoo/") for name in shipped_configs())
    assert "ap10k" in zoo_data_sets() and "_recipe" not in zoo_data_sets()
    with pytest.raises(ConfigError, match=r"^ap10k/w33_256x256: unknown model preset 'w33'"):
        load_config("ap10k/w33_256x256")
    with pytest.raises(ConfigError, match=r"^ap10k/w32_250x250: input_size must be multiples of 32"):
        load_config("ap10k/w32_250x250")
    with pytest.raises(ConfigError, match=r"nor a model zoo name <data set>/w<W>_<H>x<W>\[_dark\|_udp\] of aic, "):
        load_config("nosuch/w32_256x192")


def test_a_zoo_part_may_not_say_what_the_name_says(tmp_path, monkeypatch):
    """The network, the target, the decoding and the run's name come from the config's name alone."""
    import hrnet.config

    (tmp_path / "_recipe.yaml").write_text((ZOO_DIR / "_recipe.yaml").read_text())
    monkeypatch.setattr(hrnet.config, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(hrnet.config, "ZOO_RECIPE", tmp_path / "_recipe.yaml")
    for text, key in (
        ("model:\n  input_size: [64, 64]\n", "model.input_size"),
        ("test:\n  decode: dark\n", "test.decode"),
    ):
        (tmp_path / "mine.yaml").write_text("data:\n  keypoint_set: coco17\n" + text)
        with pytest.raises(ConfigError, match=rf"mine\.yaml: {re.escape(key)} is what a config's name says"):
            load_config("mine/w32_256x192")
    (tmp_path / "mine.yaml").write_text("data:\n  keypoint_set: coco17\n  sigma: 2.5\n")
    assert load_config("mine/w32_256x192").data.sigma == 2.5  # σ a data set may fix


def test_a_section_override_gives_only_the_keys_it_holds():
    """`--set 'data={...}'` names the keypoint set only when the mapping holds that key, not a value mentioning it."""
    assert load_config(None, ["data={keypoint_set: aic14}"]).model.num_keypoints == 14
    assert load_config("tf_w32", ["data={root: keypoint_set_dir}"]).model.num_keypoints == 14  # the preset's
    assert load_config(None, ["data={keypoint_set: aic14}", "model.num_keypoints=14"]).model.num_keypoints == 14
