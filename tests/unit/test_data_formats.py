"""Format adapters: each format, the shared checks with their reasons, detection and the registry."""

from __future__ import annotations

import pytest

from rewardlab.data import FORMATS, DataError, detect_format, get_format, register_format
from rewardlab.data.formats import parse_hh
from rewardlab.registry import UnknownNameError

LOC = "d.jsonl:3"


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


def error(fmt: str, record: dict) -> DataError:
    with pytest.raises(DataError) as info:
        FORMATS[fmt](record, LOC)
    return info.value


def test_explicit_strings_become_turns_and_defaults_fill_in():
    pair = FORMATS["explicit"]({"prompt": "hi", "chosen": "good", "rejected": "bad"}, LOC)
    assert pair.prompt == [user("hi")] and pair.chosen == [bot("good")] and pair.rejected == [bot("bad")]
    assert (pair.id, pair.source, pair.margin, pair.subset) == (LOC, "d.jsonl", None, None)


def test_explicit_messages_and_optional_fields():
    record = {
        "prompt": [{"role": "system", "content": "be nice"}, {**user("hi"), "name": "x"}],
        "chosen": [bot("good")],
        "rejected": "bad",
        "margin": 2,
        "id": 17,
        "subset": "chat",
        "source": "mine",
    }
    pair = FORMATS["explicit"](record, LOC)
    assert pair.prompt == [{"role": "system", "content": "be nice"}, user("hi")]  # extra keys dropped
    assert (pair.margin, pair.id, pair.subset, pair.source) == (2.0, "17", "chat", "mine")


def test_explicit_blank_prompt_means_no_prompt():
    assert FORMATS["explicit"]({"prompt": "", "chosen": "a", "rejected": "b"}, LOC).prompt == []


def test_strict_message_names_location_field_and_expectation():
    err = error("explicit", {"prompt": "hi", "chosen": 5, "rejected": "b"})
    assert str(err) == "d.jsonl:3: field 'chosen': expected a non-empty string or list of messages, got int"
    assert (err.location, err.field, err.reason) == (LOC, "chosen", "bad_type")


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"prompt": "hi", "chosen": "a"}, "rejected", "missing_field"),
        ({"prompt": "hi", "chosen": None, "rejected": "b"}, "chosen", "missing_field"),
        ({"prompt": "hi", "chosen": "  ", "rejected": "b"}, "chosen", "empty_response"),
        ({"prompt": "hi", "chosen": "a", "rejected": []}, "rejected", "empty_response"),
        ({"prompt": "hi", "chosen": "a", "rejected": "a"}, "rejected", "identical"),
        ({"prompt": "hi", "chosen": "a", "rejected": "b", "margin": "big"}, "margin", "bad_type"),
        ({"prompt": "hi", "chosen": "a", "rejected": "b", "margin": True}, "margin", "bad_type"),
        ({"prompt": "hi", "chosen": "a", "rejected": "b", "margin": float("nan")}, "margin", "bad_type"),
        (
            {"prompt": [{"role": "bot", "content": "x"}], "chosen": "a", "rejected": "b"},
            "prompt[0].role",
            "bad_type",
        ),
        (
            {"prompt": [{"role": "user", "content": 3}], "chosen": "a", "rejected": "b"},
            "prompt[0].content",
            "bad_type",
        ),
        ({"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}, "prompt[0]", "bad_type"),
        ({"prompt": ["hi"], "chosen": "a", "rejected": "b"}, "prompt[0]", "bad_type"),
    ],
)
def test_shared_checks_have_named_reasons(record, field, reason):
    err = error("explicit", record)
    assert (err.field, err.reason) == (field, reason)
    assert str(err).startswith(f"{LOC}: field '{field}': ")


def test_rewardbench_requires_subset():
    row = {"prompt": "hi", "chosen": "a", "rejected": "b", "subset": "xstest", "id": 4, "chosen_model": "m"}
    pair = FORMATS["rewardbench"](row, LOC)
    assert (pair.subset, pair.id) == ("xstest", "4")
    del row["subset"]
    assert (error("rewardbench", row).field, error("rewardbench", row).reason) == ("subset", "missing_field")


def test_implicit_splits_at_the_longest_common_prefix():
    shared = [user("hi"), bot("hello"), user("tell me more")]
    record = {"chosen": [*shared, bot("sure")], "rejected": [*shared, bot("no"), user("why"), bot("because")]}
    pair = FORMATS["implicit"](record, LOC)
    assert pair.prompt == shared
    assert pair.chosen == [bot("sure")] and pair.rejected == [bot("no"), user("why"), bot("because")]


@pytest.mark.parametrize(
    ("chosen", "rejected", "field", "reason"),
    [
        ([user("q"), bot("a")], [user("q"), bot("a")], "rejected", "identical"),
        ([user("q")], [user("q"), bot("a")], "chosen", "empty_response"),
        ([user("q"), bot("a")], [user("q"), bot(" ")], "rejected", "empty_response"),
        ("q a", [user("q"), bot("a")], "chosen", "bad_type"),
    ],
)
def test_implicit_errors(chosen, rejected, field, reason):
    err = error("implicit", {"chosen": chosen, "rejected": rejected})
    assert (err.field, err.reason) == (field, reason)


HH_PROMPT = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I bake bread?"


def test_parse_hh_multi_turn():
    conv = parse_hh(HH_PROMPT + "\n\nAssistant:  Knead it. \n\nFirst mix.", LOC, "chosen")
    assert conv == [user("hi"), bot("hello"), user("how do I bake bread?"), bot("Knead it. \n\nFirst mix.")]
    assert parse_hh("Human: hi\n\nAssistant: yo", LOC, "chosen") == [user("hi"), bot("yo")]


def test_hh_pair_prompt_is_everything_before_the_final_answer():
    pair = FORMATS["hh"](
        {"chosen": HH_PROMPT + "\n\nAssistant: flour", "rejected": HH_PROMPT + "\n\nAssistant: no"}, LOC
    )
    assert pair.prompt == [user("hi"), bot("hello"), user("how do I bake bread?")]
    assert pair.chosen == [bot("flour")] and pair.rejected == [bot("no")]


def test_hh_two_assistant_turns_fall_back_to_common_prefix():
    # As in real HH lines: one transcript holds two Assistant turns in a row at the end.
    chosen = HH_PROMPT + "\n\nAssistant: flour  Human: and?\n\nAssistant: water"
    pair = FORMATS["hh"]({"chosen": chosen, "rejected": HH_PROMPT + "\n\nAssistant: no"}, LOC)
    assert pair.prompt == [user("hi"), bot("hello"), user("how do I bake bread?")]
    assert pair.chosen == [bot("flour  Human: and?"), bot("water")] and pair.rejected == [bot("no")]


@pytest.mark.parametrize(
    ("chosen", "rejected", "field", "reason", "text"),
    [
        (
            "Assistant: hi\n\nHuman: x\n\nAssistant: y",
            "\n\nHuman: x\n\nAssistant: z",
            "chosen",
            "bad_structure",
            "does not start with",
        ),
        (
            "\n\nHuman: x\n\nAssistant: y\n\nHuman: more",
            "\n\nHuman: x\n\nAssistant: z",
            "chosen",
            "bad_structure",
            "does not end with an Assistant",
        ),
        (
            "\n\nHuman: x\n\nAssistant: y",
            "\n\nHuman: x\n\nAssistant:  ",
            "rejected",
            "empty_response",
            "empty",
        ),
        (
            "\n\nHuman: x\n\nAssistant: y",
            "\n\nHuman: x\n\nAssistant: y",
            "rejected",
            "identical",
            "identical",
        ),
        (
            "\n\nHuman: x\n\nAssistant: a\n\nHuman: y\n\nAssistant: b",
            "\n\nHuman: z\n\nAssistant: c",
            "chosen",
            "bad_structure",
            "do not share a prompt",
        ),
        ("\n\nHuman: x\n\nAssistant: y", 3, "rejected", "bad_type", "got int"),
    ],
)
def test_hh_errors(chosen, rejected, field, reason, text):
    err = error("hh", {"chosen": chosen, "rejected": rejected})
    assert (err.field, err.reason) == (field, reason)
    assert text in str(err)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"prompt": "p", "chosen": "a", "rejected": "b", "subset": "s"}, "rewardbench"),
        ({"prompt": [user("p")], "chosen": "a", "rejected": "b", "subset": "s"}, "explicit"),
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "explicit"),
        ({"chosen": "\n\nHuman: p\n\nAssistant: a", "rejected": "x"}, "hh"),
        ({"chosen": "Human: p\n\nAssistant: a", "rejected": "x"}, "hh"),
        ({"chosen": [user("p"), bot("a")], "rejected": [user("p"), bot("b")]}, "implicit"),
    ],
)
def test_detect_format(record, expected):
    assert detect_format(record) == expected


def test_detect_format_failure_names_keys_and_formats():
    with pytest.raises(DataError) as info:
        detect_format({"question": "q", "answer": "a"}, LOC)
    assert info.value.reason == "unknown_format"
    assert "['answer', 'question']" in str(info.value) and "explicit, hh, implicit, rewardbench" in str(
        info.value
    )


def test_unknown_format_name_suggests_the_close_one():
    with pytest.raises(UnknownNameError, match="unknown data format 'rewardbech'; did you mean 'rewardbench'"):
        get_format("rewardbech")


def test_recipe_rejects_an_unknown_format_before_reading_anything():
    from rewardlab.config import ConfigError, load_recipe

    with pytest.raises(ConfigError, match="data.format: unknown data format 'hhh'; did you mean 'hh'"):
        load_recipe(None, ["data.train=x.jsonl", "data.format=hhh"])


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_format("hh")(lambda record, location: None)
