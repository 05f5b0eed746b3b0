"""The name registry: one registration per name, and a close-name suggestion for a typo."""

from __future__ import annotations

import pytest

from rewardlab.registry import Registry, UnknownNameError
from rewardlab.variants import VARIANTS, register_variant
from rewardlab.variants.bradley_terry import BradleyTerry


@pytest.fixture
def heads() -> Registry[type]:
    reg: Registry[type] = Registry("head")

    @reg.register("linear")
    class Linear:
        pass

    reg.register("mlp")(dict)
    return reg


def test_register_returns_the_object_and_lists_names_sorted(heads):
    assert heads.get("mlp") is dict
    assert heads.get("linear").__name__ == "Linear"
    assert heads.names() == ["linear", "mlp"] and list(heads) == ["linear", "mlp"]
    assert "mlp" in heads and "conv" not in heads


def test_duplicates_are_refused_and_the_first_stays(heads):
    with pytest.raises(ValueError, match="head 'mlp' is already registered"):
        heads.register("mlp")(list)
    assert heads.get("mlp") is dict


def test_unknown_name_suggests_the_close_one(heads):
    with pytest.raises(UnknownNameError) as info:
        heads.get("lineer")
    assert str(info.value) == "unknown head 'lineer'; did you mean 'linear'? (known: linear, mlp)"
    assert isinstance(info.value, KeyError)  # callers that catch KeyError still work
    with pytest.raises(UnknownNameError, match=r"^unknown head 'transformer' \(known: linear, mlp\)$"):
        heads.get("transformer")  # nothing close: no suggestion


def test_variant_registry_refuses_a_second_bt():
    with pytest.raises(ValueError, match="variant 'bt' is already registered"):
        register_variant("bt")(type("Impostor", (BradleyTerry,), {}))
    assert VARIANTS.get("bt") is BradleyTerry
