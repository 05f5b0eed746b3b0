"""The verdict parser is total: every text maps to A, B or an unparseable result with its reason."""

from __future__ import annotations

import random

import pytest

from rewardlab.models.judge import PARSED_REASONS, PROMPTS, UNPARSEABLE_REASONS, Verdict, parse_verdict

NUM, AB = PROMPTS["default"], PROMPTS["ab"]


@pytest.mark.parametrize(
    ("text", "prompt", "choice", "reason"),
    [
        # marker: "Verdict:" (or "Answer:"), case-insensitive, the last one wins
        ("Response 1 is rude. Verdict: 2", NUM, 1, "marker"),
        ("verdict : 1", NUM, 0, "marker"),
        ("Both are fine... VERDICT: [1].", NUM, 0, "marker"),
        ("Verdict: Response 2", NUM, 1, "marker"),
        ("Verdict: 1 ... wait, no. Verdict: 2", NUM, 1, "marker"),
        ("Final answer: B", AB, 1, "marker"),
        ("answer = a", AB, 0, "marker"),
        ("Verdict: **A**", AB, 0, "marker"),
        # a marker followed by something that is not an indicator is unparseable, not guessed
        ("Verdict: both", NUM, None, "invalid_marker"),
        ("Verdict: 3", NUM, None, "invalid_marker"),
        # MT-Bench style [[X]]
        ("I prefer the second one [[2]]", NUM, 1, "brackets"),
        ("[[A]]", AB, 0, "brackets"),
        # the whole output is an indicator
        ("2", NUM, 1, "bare"),
        (" 1.\n", NUM, 0, "bare"),
        ("**B**", AB, 1, "bare"),
        ("b", AB, 1, "bare"),
        # exactly one indicator mentioned as a word
        ("I think response 2 is more helpful", NUM, 1, "mention"),
        ("Response A is kind", AB, 0, "mention"),
        ("this is a good answer B", AB, 1, "mention"),  # the article "a" is not response A
        # unparseable paths
        ("", NUM, None, "empty"),
        ("   \n ", NUM, None, "empty"),
        ("Response 1 is better than response 2", NUM, None, "ambiguous"),
        ("both are equally good", NUM, None, "no_verdict"),
        ("[[C]]", AB, None, "no_verdict"),
        ("12", NUM, None, "no_verdict"),
    ],
)
def test_every_parser_path(text, prompt, choice, reason):
    assert parse_verdict(text, prompt) == Verdict(choice, reason)
    assert parse_verdict(text, prompt).parsed == (choice is not None)


def test_reasons_partition_parsed_and_unparseable():
    assert not set(PARSED_REASONS) & set(UNPARSEABLE_REASONS)


def test_parser_is_total_on_random_text():
    rng = random.Random(0)
    alphabet = list("12ABab :[]*().,\n") + ["Verdict", "answer", "Response", "=", "the", "é", "\x00"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        for prompt in (NUM, AB):
            v = parse_verdict(text, prompt)
            assert v.choice in (0, 1, None)
            assert v.reason in (PARSED_REASONS if v.parsed else UNPARSEABLE_REASONS)


def test_custom_marker():
    from rewardlab.models.judge import JudgePrompt

    p = JudgePrompt(indicators=("X", "Y"), verdict_marker="Decision:")
    assert parse_verdict("Decision: Y", p) == Verdict(1, "marker")
    assert parse_verdict("Verdict: Y", p) == Verdict(1, "mention")
