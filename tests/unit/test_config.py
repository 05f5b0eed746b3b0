"""Recipes: YAML plus overrides, typed and checked at load time, every error naming its key."""

from __future__ import annotations

import dataclasses

import pytest

from rewardlab.config import (
    SECTIONS,
    ConfigError,
    Recipe,
    VariantConfig,
    load_recipe,
)
from rewardlab.recipe_help import recipe_help
from rewardlab.variants import VARIANTS

YAML = """\
model:
  path: /models/tiny
  lora_r: 8
data:
  train: pairs.jsonl
  max_length: 256
train:
  lr: 3e-4
  epochs: 2
variant:
  name: bt_margin
  options:
    margin_scale: 0.5
output_dir: runs/x
"""


def recipe(*overrides: str) -> Recipe:
    return load_recipe(None, ["data.train=pairs.jsonl", *overrides])


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(YAML)
    r = load_recipe(
        path, ["train.lr=1e-5", "data.max_length=128", "variant.margin_scale=2", "train.packing=false"]
    )
    assert (r.model.path, r.model.lora_r, r.data.train, r.output_dir) == (
        "/models/tiny",
        8,
        "pairs.jsonl",
        "runs/x",
    )
    assert r.train.epochs == 2.0 and isinstance(r.train.epochs, float)  # YAML int, float field
    assert r.train.lr == 1e-5 and r.data.max_length == 128 and r.train.packing is False  # overrides win
    assert r.variant == VariantConfig(name="bt_margin", options={"margin_scale": 2.0})
    assert r.train.batch_size == 8  # untouched default


def test_exponent_strings_parse_as_floats(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(YAML)
    assert load_recipe(path).train.lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as a string
    assert recipe("train.lr=3e-4").train.lr == pytest.approx(3e-4)
    r = recipe("variant.name=bt_label_smoothing", "variant.label_smoothing=1e-1")
    assert r.variant.options == {"label_smoothing": 0.1}


def test_unknown_keys_suggest_the_close_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown recipe key 'train.lrr'; did you mean 'train.lr'\?"):
        recipe("train.lrr=1e-4")
    with pytest.raises(ConfigError, match=r"unknown recipe key 'trian.lr'; did you mean 'train.lr'\?"):
        recipe("trian.lr=1e-4")
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  train: x\noutptu_dir: y\n")
    with pytest.raises(ConfigError, match=r"unknown recipe key 'outptu_dir'; did you mean 'output_dir'\?"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
        ("train.batch_size=2.5", "train.batch_size: expected an integer, got 2.5"),
        ("data.max_length=512.0", "data.max_length: expected an integer, got 512.0"),
        ("train.packing=maybe", "train.packing: expected true/false, got 'maybe'"),
        ("model.mlp_hidden=[16, wide]", r"model.mlp_hidden\[1\]: expected an integer, got 'wide'"),
        ("train.lr", "override 'train.lr' must look like section.key=value"),
    ],
)
def test_wrong_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        recipe(override)


def test_values_take_the_field_type():
    r = recipe("model.mlp_hidden=[16, 8]", "model.path=123", "train.max_steps=10", "train.warmup_ratio=0")
    assert r.model.mlp_hidden == [16, 8] and r.model.path == "123" and r.train.max_steps == 10
    assert r.train.warmup_ratio == 0.0 and isinstance(r.train.warmup_ratio, float)
    assert recipe("model.mlp_hidden=64").model.mlp_hidden == [64]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.head=conv",), "model.head must be 'linear' or 'mlp', got 'conv'"),
        (
            ("model.head=mlp", "model.mlp_hidden=[8, 8, 8]"),
            r"model.mlp_hidden must list 1 or 2 positive widths",
        ),
        (("model.lora_r=-4",), "model.lora_r must be >= 0"),
        (("train.lr=0",), "train.lr must be > 0"),
        (("train.warmup_ratio=1",), r"train.warmup_ratio must be in \[0, 1\), got 1.0"),
        (
            ("data.max_length=64", "data.min_prompt_tokens=64"),
            "data.min_prompt_tokens=64 must be >= 0 and < data",
        ),
        (("train.dtype=float16",), "train.dtype must be 'auto', 'float32' or 'bfloat16'"),
        (("model.pooling=max",), "model.pooling must be 'last' or 'mean', got 'max'"),
        (("model.pooling=mean", "variant.name=grm_sft"), "model.pooling: 'mean' is for scalar reward heads"),
        (("model.pooling=mean", "variant.name=genrm"), "model.pooling: 'mean' is for scalar reward heads"),
    ],
)
def test_bad_values_and_combinations_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        recipe(*overrides)


def test_training_data_is_required():
    with pytest.raises(ConfigError, match="data.train is required"):
        load_recipe(None, ["train.lr=1e-4"])


def test_variant_options_are_validated():
    with pytest.raises(ConfigError, match=r"variant.label_smoothing must be in \[0, 0.5\), got 0.7"):
        recipe("variant.name=bt_label_smoothing", "variant.label_smoothing=0.7")
    with pytest.raises(ConfigError, match="variant.label_smoothing: expected a number, got 'lots'"):
        recipe("variant.name=bt_label_smoothing", "variant.label_smoothing=lots")
    with pytest.raises(
        ConfigError, match=r"unknown variant 'bt_label_smoothng'; did you mean 'bt_label_smoothing'"
    ):
        recipe("variant.name=bt_label_smoothng")
    with pytest.raises(
        ConfigError, match=r"no option 'variant.margin_scal'; did you mean 'variant.margin_scale'"
    ):
        recipe("variant.name=bt_margin", "variant.margin_scal=2")
    with pytest.raises(ConfigError, match="variant 'bt' has no option 'variant.label_smoothing'"):
        recipe("variant.label_smoothing=0.1")  # an option of another variant


def test_frozen_backbone_refuses_lora():
    with pytest.raises(ConfigError, match="variant 'bt_frozen' freezes the backbone; model.lora_r must be 0"):
        recipe("variant.name=bt_frozen", "model.lora_r=8")
    assert recipe("variant.name=bt_frozen").model.lora_r == 0


def test_help_documents_every_key():
    text = recipe_help()
    lines = text.splitlines()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            line = next(x for x in lines if x.startswith(f"  {section}.{f.name} (default "))
            assert len(line.split("): ", 1)[1]) > 10, f"{section}.{f.name} is undocumented"
    for name in VARIANTS:
        for f in dataclasses.fields(VARIANTS.get(name)):
            line = next(x for x in lines if x.startswith(f"  variant.{f.name} ("))
            assert name in line.split(";")[0] and len(line.split("): ", 1)[1]) > 10
    assert "  variant.name (default 'bt'): " in text and "  output_dir (default 'runs/rm'): " in text
    assert "  variant.label_smoothing (bt_label_smoothing; default 0.1): " in text
