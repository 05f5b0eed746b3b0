"""Generative reward models on a tiny in-process causal LM: indicator probabilities, both-order
averaging, order consistency, GenRM SFT, the STaR loop, the rationalizer, STaR-DPO and the DPO
implicit reward."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewardlab.data import load_pairs
from rewardlab.models.judge import judge_prompt, judge_prompt_ids, parse_verdict
from rewardlab.models.judge_scorer import JudgeScorer, JudgeSettings
from rewardlab.models.lm import load_causal_lm
from tests.conftest import REPO, synthetic_pairs, write_jsonl
from tests.fp32 import EPS, forward_terms, fp32_atol, fp32_tol

PROMPT_FILE = REPO / "configs" / "tiny_judge_prompt.yaml"


def prob_tol(model, logits: torch.Tensor) -> dict:
    """For an indicator probability, one fp32 computation against another order of it (batched and
    padded, or one sequence at a time): P = softmax of two logits moves by at most a quarter of the
    error of their difference, so by half the fp32 tolerance of a logit of ``logits``' magnitude
    (tests/fp32.py; the logit's path is the reward's with the LM head in place of the reward head,
    over at most the model's positions)."""
    terms = forward_terms(model.config, model.config.max_position_embeddings)
    return {"atol": fp32_atol(terms, logits) / 2, "rtol": 0.0}


@pytest.fixture(scope="module")
def indicator_logits(judge, pairs) -> torch.Tensor:
    """The indicator logits of every pair in both orders, one sequence at a time (their magnitude sets
    the tolerance of the probabilities)."""
    model, tok = judge
    s = JudgeScorer(model, tok, JudgeSettings(prompt=str(PROMPT_FILE)))
    ids = tok.convert_tokens_to_ids(["1", "2"])
    out = []
    with torch.no_grad():
        for pair in pairs:
            for a, b in ((pair.chosen, pair.rejected), (pair.rejected, pair.chosen)):
                seq = judge_prompt_ids(tok, s.prompt.messages(pair.prompt, a, b))
                out.append(model(torch.tensor([seq])).logits[0, -1, ids])
    return torch.stack(out)


@pytest.fixture(scope="module")
def judge(tiny_judge):
    model, tok = load_causal_lm(tiny_judge)
    torch.manual_seed(0)
    with torch.no_grad():  # a less uniform random model: probabilities away from 0.5
        for p in model.parameters():
            p.mul_(3)
    return model, tok


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("judge-pairs")
    return load_pairs(write_jsonl(d / "p.jsonl", synthetic_pairs(6, 3)))[0]


def scorer(judge, **kw) -> JudgeScorer:
    model, tok = judge
    return JudgeScorer(model, tok, JudgeSettings(prompt=str(PROMPT_FILE), **kw))


def args_of(pairs):
    return [p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs]


def test_indicator_probability_is_the_softmax_over_the_two_tokens(judge, pairs, indicator_logits):
    model, tok = judge
    s = scorer(judge, both_orders=False)
    p, _ = s.order_probs(*args_of(pairs))
    first, second = tok.convert_tokens_to_ids(["1", "2"])
    for i, pair in enumerate(pairs):  # one sequence at a time, no padding, full forward
        ids = judge_prompt_ids(tok, s.prompt.messages(pair.prompt, pair.chosen, pair.rejected))
        logits = model(torch.tensor([ids])).logits[0, -1]
        expected = torch.softmax(logits[[first, second]], -1)[0]
        torch.testing.assert_close(p[i], expected, **prob_tol(model, indicator_logits))
    assert ((p > 0) & (p < 1)).all() and p.std() > 0


def test_compare_averages_both_orders(judge, pairs, indicator_logits):
    tol = prob_tol(judge[0], indicator_logits)
    prompts, a, b = args_of(pairs)
    one = scorer(judge, both_orders=False)
    fwd, _ = one.order_probs(prompts, a, b)
    rev, _ = one.order_probs(prompts, b, a)
    both = scorer(judge)
    res = both.compare_detailed(prompts, a, b)
    torch.testing.assert_close(res.prob_forward, fwd, **tol)
    torch.testing.assert_close(res.prob_swapped, 1 - rev, **tol)
    torch.testing.assert_close(both.compare(prompts, a, b), (fwd + 1 - rev) / 2, **tol)
    # averaged over both orders, the judge is symmetric: P(a ≻ b) + P(b ≻ a) = 1, up to the orders of two
    # probabilities (each averaged with weight 1/2 into both sides): twice a probability's tolerance
    torch.testing.assert_close(both.compare(prompts, a, b) + both.compare(prompts, b, a),
                               torch.ones(len(pairs)), atol=2 * tol["atol"], rtol=0.0)
    with pytest.raises(NotImplementedError, match="use compare"):
        both.score([[*prompts[0], *a[0]]])


def test_evaluation_reports_order_consistency(judge, pairs):
    from rewardlab.eval.pairwise import evaluate_pairs

    s = scorer(judge)
    res = s.compare_detailed(*args_of(pairs))
    summary, rows = evaluate_pairs(s, pairs)
    assert summary["order_consistency"] == pytest.approx(res.consistent.float().mean().item())
    assert [r["order_consistent"] for r in rows] == res.consistent.tolist()
    for r in rows:  # each row's score is the mean of the two orders: their fp32 sum (< 2) rounds by eps at most
        assert r["chosen_score"] == pytest.approx((r["p_forward"] + r["p_swapped"]) / 2, abs=EPS)


def test_cot_judge_is_a_vote_share_with_counted_parses(judge, pairs):
    s = scorer(judge, method="cot", k=3, max_new_tokens=6, temperature=1.0)
    res = s.compare_detailed(*args_of(pairs))
    assert sum(res.reasons.values()) == len(pairs) * 2 * 3  # every sample is parsed or counted unparseable
    for p in (res.prob_forward, res.prob_swapped):  # shares of at most 3 votes, or 0.5
        assert all(round(x * 6) == x * 6 for x in p.tolist())
    again = s.compare_detailed(*args_of(pairs))  # seeded: the same votes
    torch.testing.assert_close(again.prob, res.prob, atol=0, rtol=0)  # exact: the same samples counted


def test_shared_prompt_cache_generates_what_separate_calls_generate(judge, pairs):
    from rewardlab.models.generation import TransformersBackend

    model, tok = judge
    s = scorer(judge, method="cot")
    seqs = [s.prompt_ids(p.prompt, p.chosen, p.rejected) for p in pairs[:3]]
    seqs = [seqs[0] + seqs[1][-3:], *seqs]  # unequal lengths: batches of 2 are formed by length
    assert len({len(q) for q in seqs}) > 1
    shared = TransformersBackend(model, tok, batch_size=2).sample(seqs, 2, temperature=0, max_new_tokens=6)
    alone = [TransformersBackend(model, tok, share_prompt_cache=False).sample([q], 1, temperature=0,
                                                                              max_new_tokens=6)[0] for q in seqs]
    assert shared == [[a[0], a[0]] for a in alone]


def recipe(tmp_path, tiny_judge, pair_files, config, *extra):
    from rewardlab.config import load_recipe

    return load_recipe(REPO / "configs" / config, [
        f"model.path={tiny_judge}", f"data.train={pair_files[0]}", f"data.eval={pair_files[1]}",
        f"variant.prompt={PROMPT_FILE}", f"output_dir={tmp_path / 'run'}", *extra])


def test_genrm_sft_lowers_the_loss_and_learns_the_preference(tmp_path, tiny_judge, pair_files):
    from rewardlab.train.run import train_reward_model

    untrained = JudgeScorer.load(tiny_judge, prompt=str(PROMPT_FILE))
    evals = load_pairs(pair_files[1])[0]
    from rewardlab.eval.pairwise import evaluate_pairs

    before = evaluate_pairs(untrained, evals)[0]["accuracy"]
    m = train_reward_model(recipe(tmp_path, tiny_judge, pair_files, "tiny_genrm.yaml"))
    losses = [h["loss"] for h in m["log_history"] if "loss" in h]
    assert m["train"]["examples"] == 2 * 64  # both orders of every pair
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    assert m["eval"]["accuracy"] >= 0.75 > before
    assert 0 <= m["eval"]["order_consistency"] <= 1
    final = tmp_path / "run" / "final"
    manifest = json.loads((final / "rewardlab_judge.json").read_text())
    assert manifest["method"] == "indicator" and manifest["kind"] == "genrm"
    assert manifest["prompt"]["template"].startswith("{conversation}")  # stored by value
    from rewardlab import load_scorer

    reloaded = load_scorer(str(final))
    assert reloaded.is_generative
    assert evaluate_pairs(reloaded, evals)[0]["accuracy"] == pytest.approx(m["eval"]["accuracy"])


def test_star_two_iterations(tmp_path, tiny_judge, pair_files):
    from rewardlab.train.star import run_star

    cache = tmp_path / "samples"
    m = run_star(recipe(tmp_path, tiny_judge, pair_files, "tiny_star.yaml", f"variant.sample_cache={cache}"))
    assert len(list(cache.glob("*.json"))) == 1  # iteration 1 (the initial model) only
    lines = [json.loads(x) for x in (tmp_path / "run" / "star.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2] and lines == m["iterations"]
    for x in lines:
        assert x["inputs"] == 2 * 8 and x["samples"] == 2 * 8 * 4  # 8 pairs x 2 orders, k = 4
        assert 0 <= x["yield"] <= 1 and x["yield"] == x["correct"] / x["samples"]
        assert sum(x["parser"].values()) == x["samples"]
        assert x["train_examples"] == x["kept"] and "eval_accuracy" in x
    manifest = json.loads((tmp_path / "run" / "final" / "rewardlab_judge.json").read_text())
    assert manifest["method"] == "cot" and manifest["k"] == 4 and manifest["kind"] == "star_sft"


def test_cached_backend_samples_once_per_model_prompts_and_settings(tmp_path):
    from rewardlab.models.generation import CachedBackend

    class Counting:
        calls = 0

        def sample(self, prompts, k, temperature=0.7, max_new_tokens=128, seed=0):
            Counting.calls += 1
            return [[f"{p[0]}-{seed}-{i}" for i in range(k)] for p in prompts]

    a = CachedBackend(Counting(), tmp_path, "model-a")
    first = a.sample([[1, 2], [3]], 2, seed=5)
    assert first == [["1-5-0", "1-5-1"], ["3-5-0", "3-5-1"]] and Counting.calls == 1
    assert CachedBackend(Counting(), tmp_path, "model-a").sample([[1, 2], [3]], 2, seed=5) == first
    assert Counting.calls == 1  # another run, same key: read from disk
    for change in (dict(seed=6), dict(k=3), dict(temperature=1.0), dict(max_new_tokens=9)):
        a.sample([[1, 2], [3]], **{"k": 2, "seed": 5, **change})
    CachedBackend(Counting(), tmp_path, "model-b").sample([[1, 2], [3]], 2, seed=5)
    assert Counting.calls == 6


class ScriptedBackend:
    """Answers correctly only when the prompt carries the hint; otherwise with no verdict at all.
    For DPO: one correct and one wrong rationale per prompt."""

    def __init__(self, tok, mode: str, labels: dict | None = None) -> None:
        self.hint_id = tok.convert_tokens_to_ids("hint")
        self.one, self.two = tok.convert_tokens_to_ids(["1", "2"])
        self.mode, self.calls, self.labels = mode, [], labels or {}

    def sample(self, prompts, k, temperature=0.7, max_new_tokens=128, seed=0):
        self.calls.append([list(p) for p in prompts])
        out = []
        for p in prompts:
            hinted = self.hint_id in p
            # the hint names the answer right after "is": the last 1/2 token before the template's end
            answer = next(t for t in reversed(p) if t in (self.one, self.two)) if hinted else None
            if self.mode == "dpo":  # a correct rationale that is "kind", a wrong one that is "rude"
                label = self.labels[tuple(p)]
                out.append([f"kind so verdict : {label + 1}", f"rude so verdict : {2 - label}"][:k])
            elif hinted:
                out.append([f"because kind verdict : {1 if answer == self.one else 2}"] * k)
            else:
                out.append(["maybe"] * k)
        return out


def test_rationalizer_adds_hinted_rationales_without_the_hint(tiny_judge, pairs):
    from rewardlab.data.encode import ChatEncoder
    from rewardlab.train.star import generate_star_data, star_inputs, training_rows

    model, tok = load_causal_lm(tiny_judge)
    prompt = judge_prompt(str(PROMPT_FILE))
    inputs = star_inputs(pairs)
    backend = ScriptedBackend(tok, "sft")
    plain = generate_star_data(backend, tok, prompt, inputs, 2, 1.0, 8, 0, rationalize=False)
    assert plain.sft == [] and plain.stats["yield"] == 0 and plain.stats["rationalized"] == 0
    data = generate_star_data(backend, tok, prompt, inputs, 2, 1.0, 8, 0, rationalize=True)
    assert data.stats["rationalized"] == len(inputs) and len(data.sft) == len(inputs)
    assert backend.hint_id in backend.calls[-1][0]  # the second call carried the hint
    for x, text in data.sft:
        assert parse_verdict(text, prompt).choice == x.label
    rows = training_rows(data, ChatEncoder(tok), prompt, dpo=False)
    for (x, text), row in zip(data.sft, rows, strict=True):
        prompt_part, target = row["ids"][: row["start"]], row["ids"][row["start"]:]
        assert backend.hint_id not in prompt_part  # stored without the hint
        assert tok.decode(target, skip_special_tokens=True).strip() == text
        assert prompt_part == judge_prompt_ids(tok, x.messages(prompt))


def test_star_dpo_builds_pairs_and_trains(tmp_path, tiny_judge, pair_files, pairs):
    from rewardlab.data.encode import ChatEncoder
    from rewardlab.models.lm import sequence_logps
    from rewardlab.train.judge import fit
    from rewardlab.train.star import generate_star_data, star_inputs, training_rows
    from rewardlab.variants import make_variant

    model, tok = load_causal_lm(tiny_judge)
    prompt = judge_prompt(str(PROMPT_FILE))
    inputs = star_inputs(pairs)
    labels = {tuple(judge_prompt_ids(tok, x.messages(prompt))): x.label for x in inputs}
    data = generate_star_data(ScriptedBackend(tok, "dpo", labels), tok, prompt, inputs, 2, 1.0, 8, 0)
    assert len(data.dpo) == len(inputs) and data.stats["dpo_pairs"] == len(inputs)
    for x, good, bad in data.dpo:
        assert parse_verdict(good, prompt).choice == x.label != parse_verdict(bad, prompt).choice
    rows = training_rows(data, ChatEncoder(tok), prompt, dpo=True)

    def margin():
        seqs = [r["ids"] for r in rows] + [r["rejected_ids"] for r in rows]
        starts = [r["start"] for r in rows] + [r["rejected_start"] for r in rows]
        lp = sequence_logps(model, seqs, starts, tok.pad_token_id)[0]
        return (lp[: len(rows)] - lp[len(rows):]).mean().item()

    before = margin()
    rec = recipe(tmp_path, tiny_judge, pair_files, "tiny_star.yaml", "variant.name=star_dpo", "train.max_steps=12")
    stats = fit(rec, make_variant("star_dpo", rec.variant.options), model, tok, rows, tmp_path / "dpo")
    assert stats["steps"] == 12 and stats["examples"] == len(rows)
    assert all(tok.decode(r["ids"][r["start"]:]).startswith("kind") for r in rows)
    losses = [h["loss"] for h in stats["log_history"] if "loss" in h]
    # The reference is the model itself: −log σ(0). The reference pass and the training forward batch
    # differently, so the policy-reference gap is fp32 noise of summed log-probabilities (about 4e-5 of
    # their magnitude here, tests/fp32.py) times beta: 1e-3 is far above it and far below a learned gap.
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
    assert losses[-1] < losses[0] and margin() > before  # correct rationales gained on wrong ones


def test_dpo_implicit_reward_is_beta_times_the_log_ratio(tmp_path, tiny_judge):
    from rewardlab.models.implicit import DPOImplicitScorer
    from tests.conftest import make_tiny_judge

    ref_dir = make_tiny_judge(tmp_path / "ref", seed=1)
    policy, tok = load_causal_lm(tiny_judge)
    reference, _ = load_causal_lm(ref_dir)
    convs = [[{"role": "user", "content": "how are you ?"}, {"role": "assistant", "content": "good kind"}],
             [{"role": "user", "content": "please help me"}, {"role": "assistant", "content": "no"}]]

    def by_hand(model, conv):  # log π(response | prompt): full forward, log-softmax, gather
        head = tok.apply_chat_template(conv[:1], tokenize=False, add_generation_prompt=True)
        p_ids = tok(head, add_special_tokens=False)["input_ids"]
        r_ids = tok(conv[1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + r_ids])
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        return sum(logp[len(p_ids) + j - 1, t].item() for j, t in enumerate(r_ids)), len(r_ids)

    beta = 0.25
    pol = [by_hand(policy, c) for c in convs]
    ref = [by_hand(reference, c) for c in convs]
    # Batched against one conversation at a time: what fp32 promises for summed log-probabilities of
    # their magnitude (tests/fp32.py), times beta; the ratio subtracts two of them.
    tol = fp32_tol(forward_terms(policy.config, 64, vocab=True), beta * torch.tensor([x[0] for x in pol + ref]))
    ratio = DPOImplicitScorer(policy, tok, reference, beta=beta, reduction="ratio").score(convs)
    torch.testing.assert_close(ratio, torch.tensor([beta * (p[0] - r[0]) for p, r in zip(pol, ref, strict=True)]),
                               atol=2 * tol["atol"], rtol=0.0)
    total = DPOImplicitScorer(policy, tok, beta=beta, reduction="sum").score(convs)
    torch.testing.assert_close(total, torch.tensor([beta * p[0] for p in pol]), **tol)
    mean = DPOImplicitScorer(policy, tok, beta=beta, reduction="mean").score(convs)
    torch.testing.assert_close(mean, torch.tensor([beta * p[0] / p[1] for p in pol]), **tol)
    s = DPOImplicitScorer.load(tiny_judge, ref_dir, beta=beta)
    p = s.compare([convs[0][:1]], [convs[0][1:]], [[{"role": "assistant", "content": "bad"}]])
    assert 0 < p.item() < 1
    with pytest.raises(ValueError, match="needs a reference"):
        DPOImplicitScorer(policy, tok, None, reduction="ratio")


def test_judge_lora_adapts_only_the_top_blocks_asked_for(tmp_path, tiny_judge, pair_files):
    from rewardlab.models.lm import load_causal_lm
    from rewardlab.train.layers import apply_lora, blocks_of

    rec = recipe(tmp_path, tiny_judge, pair_files, "tiny_genrm.yaml", "model.lora_r=4", "model.train_layers=1")
    model, _ = load_causal_lm(tiny_judge)
    n = len(blocks_of(model))
    wrapped = apply_lora(model, rec, task_type="CAUSAL_LM")
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in wrapped.named_parameters() if "lora_A" in name}
    assert adapted == {str(n - 1)}  # model.train_layers=1: the last block only
    assert wrapped.peft_config["default"].task_type == "CAUSAL_LM"
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)  # no reward head to train in full


def test_judges_and_implicit_scorers_load_on_the_device_asked_for(tmp_path, tiny_judge):
    from rewardlab.models.implicit import DPOImplicitScorer

    judge = JudgeScorer.load(tiny_judge, prompt=str(PROMPT_FILE), device="cpu")
    implicit = DPOImplicitScorer.load(tiny_judge, tiny_judge, device="cpu")
    for model in (judge.model, implicit.policy, implicit.reference):
        assert {p.device.type for p in model.parameters()} == {"cpu"}
    with pytest.raises(ValueError, match="got 'tpu'"):
        JudgeScorer.load(tiny_judge, prompt=str(PROMPT_FILE), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            DPOImplicitScorer.load(tiny_judge, tiny_judge, device="cuda")
