"""The judge prompt format, indicator-token arithmetic, vote shares, order consistency and the
``--judge`` spec, without a model (the tiny tokenizer only).

Comparisons keep ``assert_close``'s float32 defaults (rtol 1.3e-6, about 11 ulps, and atol 1e-5): a
handful of correctly rounded fp32 operations on O(1) numbers, against float64 arithmetic, stay well
within them on any machine (see tests/fp32.py for computations long enough to need more)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from rewardlab.models.implicit import implicit_reward
from rewardlab.models.judge import (
    PROMPTS,
    JudgePrompt,
    Verdict,
    indicator_probs,
    indicator_token_ids,
    judge_prompt,
    judge_prompt_ids,
)
from rewardlab.models.judge_scorer import JudgeResult, JudgeSettings, parse_judge_spec, votes_to_probs

PROMPT = [{"role": "user", "content": "how are you ?"}]
A = [{"role": "assistant", "content": "good kind"}]
B = [{"role": "assistant", "content": "bad rude"}]


def test_messages_hold_both_responses_in_order_and_the_instruction():
    p = PROMPTS["default"]
    (msg,) = p.messages(PROMPT, A, B)
    text = msg["content"]
    assert msg["role"] == "user"
    assert "User: how are you ?" in text
    assert text.index("[Response 1]\ngood kind") < text.index("[Response 2]\nbad rude")
    assert text.endswith("Answer with 1 or 2 only.")
    (swapped,) = p.messages(PROMPT, B, A)
    assert swapped["content"].index("bad rude") < swapped["content"].index("good kind")
    cot = p.messages(PROMPT, A, B, cot=True)[0]["content"]
    assert cot.endswith("end with 'Verdict: 1' or 'Verdict: 2'.")
    hinted = p.messages(PROMPT, A, B, cot=True, hint=1)[0]["content"]
    assert hinted == cot + "\n(Hint: the better response is 2.)"


def test_system_message_and_letter_indicators():
    p = JudgePrompt(system="You are a fair judge.", indicators=("A", "B"))
    msgs = p.messages([], A, B)
    assert msgs[0] == {"role": "system", "content": "You are a fair judge."}
    assert "(empty)" in msgs[1]["content"] and msgs[1]["content"].endswith("Answer with A or B only.")


def test_prompt_from_name_dict_and_file(tmp_path):
    assert judge_prompt(None) is PROMPTS["default"] and judge_prompt("ab").indicators == ("A", "B")
    assert judge_prompt({"indicators": ["X", "Y"]}).indicators == ("X", "Y")
    f = tmp_path / "p.yaml"
    f.write_text("template: '{conversation} | {response_a} | {response_b}'\nindicators: [x, y]\n")
    p = judge_prompt(str(f))
    assert p.indicators == ("x", "y") and judge_prompt(p.to_dict()) == p
    with pytest.raises(ValueError, match="not one of default, ab"):
        judge_prompt("abc")
    with pytest.raises(ValueError, match="unknown field"):
        judge_prompt({"indicator": ["1", "2"]})
    with pytest.raises(ValueError, match="placeholder {response_b}"):
        JudgePrompt(template="{conversation} {response_a}")
    with pytest.raises(ValueError, match="two different"):
        JudgePrompt(indicators=("1", "1"))


def test_indicator_ids_and_prompt_ids_with_the_chat_template(tmp_path):
    from tests.conftest import JUDGE_WORDS, make_tokenizer

    tok = make_tokenizer(tmp_path, JUDGE_WORDS)
    ids = indicator_token_ids(tok, PROMPTS["default"])
    assert ids == tuple(tok.convert_tokens_to_ids(["1", "2"]))
    with pytest.raises(ValueError, match="indicator 'Z'"):  # not in the vocabulary
        indicator_token_ids(tok, JudgePrompt(indicators=("1", "Z")))
    seq = judge_prompt_ids(tok, PROMPTS["default"].messages(PROMPT, A, B))
    # ends with the generation prompt: the next token is the judge's verdict
    assert tok.convert_ids_to_tokens(seq[-2:]) == ["<|im_start|>", "assistant"]
    assert tok.convert_ids_to_tokens(seq[:2]) == ["<|im_start|>", "user"]


def test_indicator_probs_are_normalised_over_the_two_tokens():
    logits = torch.tensor([[0.0, 2.0, 1.0, 5.0], [3.0, -1.0, -1.0, 9.0]])
    p = indicator_probs(logits, (1, 2))
    # softmax over the two indicator logits only: e^2 / (e^2 + e^1), e^-1 / (e^-1 + e^-1)
    torch.testing.assert_close(p, torch.tensor([math.exp(2) / (math.exp(2) + math.exp(1)), 0.5]))


def test_vote_share_counts_parsed_verdicts_only():
    v = [[Verdict(0, "marker"), Verdict(0, "bare"), Verdict(1, "marker"), Verdict(None, "no_verdict")],
         [Verdict(None, "empty"), Verdict(None, "ambiguous")],
         [Verdict(1, "mention")]]
    p, reasons = votes_to_probs(v)
    torch.testing.assert_close(p, torch.tensor([2 / 3, 0.5, 0.0]))
    assert reasons == Counter(marker=2, bare=1, no_verdict=1, empty=1, ambiguous=1, mention=1)


def test_order_consistency():
    r = JudgeResult(prob=torch.zeros(4), prob_forward=torch.tensor([0.9, 0.8, 0.3, 0.5]),
                    prob_swapped=torch.tensor([0.7, 0.4, 0.2, 0.5]),
                    reasons=Counter(marker=5, no_verdict=2, empty=1))
    # same side in both orders: pairs 0 and 2; a tie (pair 3) is not consistent
    assert r.consistent.tolist() == [True, False, True, False]
    assert r.order_consistency == 0.5 and r.unparseable == 3
    assert JudgeResult(torch.zeros(1), torch.zeros(1), None).order_consistency is None


def test_judge_spec():
    assert parse_judge_spec("indicator") == {"method": "indicator"}
    assert parse_judge_spec("cot:k=4,temperature=1.0,prompt=ab") == {
        "method": "cot", "k": 4, "temperature": 1.0, "prompt": "ab"}
    assert parse_judge_spec("k=2,both_orders=false") == {"k": 2, "both_orders": False}
    with pytest.raises(ValueError, match="did you mean 'temperature'"):
        parse_judge_spec("cot:temprature=1")
    with pytest.raises(ValueError, match="method must be one of"):
        JudgeSettings(**parse_judge_spec("sample"))


def test_implicit_reward_arithmetic():
    logps, tokens, ref = torch.tensor([-4.0, -9.0]), torch.tensor([2.0, 3.0]), torch.tensor([-5.0, -6.0])
    torch.testing.assert_close(implicit_reward(logps, tokens, ref, 0.5, "ratio"), torch.tensor([0.5, -1.5]))
    torch.testing.assert_close(implicit_reward(logps, tokens, None, 0.5, "sum"), torch.tensor([-2.0, -4.5]))
    torch.testing.assert_close(implicit_reward(logps, tokens, None, 0.5, "mean"), torch.tensor([-1.0, -1.5]))
    with pytest.raises(ValueError, match="needs the reference"):
        implicit_reward(logps, tokens, None, 0.5, "ratio")
