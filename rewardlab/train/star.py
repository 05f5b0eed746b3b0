"""The STaR loop for CoT-GenRM (Mahan et al. 2024, after Zelikman et al. 2022, "STaR").

Each iteration:
1. sample ``k`` rationales per training pair and order from the current judge;
2. keep those whose parsed verdict matches the label (the *yield*: correct samples / samples);
3. ``star_rationalizer``: for each input with no correct rationale, sample again with the correct
   answer given as a hint and keep the first correct one, stored *without* the hint;
4. train: SFT on the kept rationales (``star_sft``, ``star_rationalizer``), or DPO on (correct,
   wrong) rationale pairs of the same input against the current model (``star_dpo``);
5. log the yield, the training inputs the vote gets right, and held-out accuracy.

SFT restarts from the initial model each iteration (``variant.restart``, as STaR does); DPO continues.
``rewardlab star RECIPE`` runs it and writes ``final/`` (a CoT judge directory), ``metrics.json`` and
``star.jsonl`` (one line per iteration).
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rewardlab import jsonout
from rewardlab.data.encode import ChatEncoder
from rewardlab.models.judge import JudgePrompt, judge_prompt, judge_prompt_ids, parse_verdict
from rewardlab.models.judge_scorer import JudgeScorer
from rewardlab.train.judge import (
    both_orders,
    dpo_row,
    evaluate_judge,
    fit,
    judge_settings,
    save_judge,
    sft_row,
)
from rewardlab.types import PreferencePair

log = logging.getLogger("rewardlab")


@dataclass
class StarInput:
    """One training pair in one order: the judge sees (first, second); ``label`` is the better one."""

    pair: PreferencePair
    first: list
    second: list
    label: int

    def messages(self, prompt: JudgePrompt, hint: bool = False):
        return prompt.messages(self.pair.prompt, self.first, self.second, cot=True,
                               hint=self.label if hint else None)


@dataclass
class StarData:
    """What one iteration generated and kept."""

    sft: list[tuple[StarInput, str]] = field(default_factory=list)
    """(input, rationale) with a correct verdict; rationalized ones included."""
    dpo: list[tuple[StarInput, str, str]] = field(default_factory=list)
    """(input, correct rationale, wrong rationale)."""
    stats: dict = field(default_factory=dict)


def star_inputs(pairs: Sequence[PreferencePair]) -> list[StarInput]:
    return [StarInput(p, f, s, label) for p in pairs for f, s, label in both_orders(p)]


def generate_star_data(backend, tok, prompt: JudgePrompt, inputs: Sequence[StarInput], k: int,
                       temperature: float, max_new_tokens: int, seed: int, rationalize: bool = False,
                       max_prompt_tokens: int | None = None) -> StarData:
    """Sample, parse and filter rationales for every input (steps 1-3 of the loop)."""

    def ids(x: StarInput, hint: bool) -> list[int]:
        out = judge_prompt_ids(tok, x.messages(prompt, hint))
        return out[-max_prompt_tokens:] if max_prompt_tokens and len(out) > max_prompt_tokens else out

    texts = backend.sample([ids(x, False) for x in inputs], k, temperature, max_new_tokens, seed)
    data, reasons = StarData(), Counter()
    right_votes = missing = correct = 0
    for x, ts in zip(inputs, texts, strict=True):
        verdicts = [parse_verdict(t, prompt) for t in ts]
        reasons.update(v.reason for v in verdicts)
        good = list(dict.fromkeys(t.strip() for t, v in zip(ts, verdicts, strict=True) if v.choice == x.label))
        bad = list(dict.fromkeys(t.strip() for t, v in zip(ts, verdicts, strict=True) if v.choice != x.label))
        parsed = [v.choice for v in verdicts if v.choice is not None]
        right_votes += parsed.count(x.label) > len(parsed) / 2
        correct += parsed.count(x.label)
        data.sft += [(x, t) for t in good]
        data.dpo += [(x, g, b) for g, b in zip(good, bad, strict=False)]
        missing += not good
    hinted = [x for x in inputs if not any(i is x for i, _ in data.sft)] if rationalize else []
    rationalized = 0
    if hinted:
        texts = backend.sample([ids(x, True) for x in hinted], k, temperature, max_new_tokens, seed + 1)
        for x, ts in zip(hinted, texts, strict=True):
            good = [t.strip() for t in ts if parse_verdict(t, prompt).choice == x.label]
            if good:
                data.sft.append((x, good[0]))
                rationalized += 1
    n_samples = len(inputs) * k
    data.stats = {"inputs": len(inputs), "samples": n_samples, "correct": correct,
        "yield": correct / n_samples if n_samples else 0.0, "kept": len(data.sft) - rationalized,
        "inputs_with_correct": len(inputs) - missing, "vote_accuracy": right_votes / len(inputs) if inputs else 0.0,
        "rationalized": rationalized, "dpo_pairs": len(data.dpo), "parser": dict(reasons)}
    return data


def training_rows(data: StarData, encoder: ChatEncoder, prompt: JudgePrompt, dpo: bool) -> list[dict]:
    """SFT rows (judge prompt without any hint → rationale) or DPO rows (correct vs wrong rationale)."""

    def enc(x: StarInput, text: str):
        return encoder.encode(x.messages(prompt), [{"role": "assistant", "content": text}], x.pair.id)

    if dpo:
        return [dpo_row(enc(x, g), enc(x, b)) for x, g, b in data.dpo]
    return [sft_row(enc(x, t)) for x, t in data.sft]


def run_star(recipe) -> dict:
    """Run ``variant.iterations`` STaR iterations; write ``final/``, ``star.jsonl``, ``metrics.json``."""
    from transformers import set_seed

    from rewardlab.config import recipe_to_dict
    from rewardlab.models.lm import load_causal_lm
    from rewardlab.train.report import write_json
    from rewardlab.train.setup import (
        load_tokenizer,
        precision_metrics,
        prepare_data,
        training_dtype,
    )
    from rewardlab.variants import make_variant

    variant = make_variant(recipe.variant.name, recipe.variant.options)
    if not variant.self_improving:
        from rewardlab.config import ConfigError

        raise ConfigError(f"variant {variant.name!r} is not trained by the STaR loop; use star_sft, "
                          "star_rationalizer or star_dpo (or `rewardlab train` for it)")
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    base, _ = load_tokenizer(recipe)
    data = prepare_data(recipe)
    initial, tok = load_causal_lm(base, torch.float32, recipe.model.trust_checkpoint)
    prompt = judge_prompt(variant.prompt)
    encoder = ChatEncoder(tok, max_length=recipe.data.max_length, min_prompt_tokens=recipe.data.min_prompt_tokens)
    settings = judge_settings(variant, recipe.train.seed)
    run = _StarRun(recipe, variant, base, out, tok, initial, prompt, encoder, settings, star_inputs(data.train))
    model, history, last_eval = initial, [], None
    log_path = out / "star.jsonl"
    log_path.write_text("")
    start = time.perf_counter()
    for it in range(1, variant.iterations + 1):
        model, record = _star_iteration(run, model, it)
        if data.eval:
            scorer = JudgeScorer(model, tok, settings, max_length=recipe.data.max_length)
            ev = last_eval = evaluate_judge(scorer, data.eval, out / "eval.json", recipe.train.seed)
            record.update(eval_accuracy=ev["accuracy"], order_consistency=ev.get("order_consistency"))
        history.append(record)
        with log_path.open("a") as fh:
            fh.write(jsonout.dumps(record) + "\n")
        log.info("STaR iteration %d: %s", it, record)
    final = save_judge(model, tok, settings, out / "final")
    metrics = {"output_dir": str(out), "final_model": str(final), "variant": variant.name,
               "train_seconds": round(time.perf_counter() - start, 2), "iterations": history,
               "train": {"pairs": len(data.train), "steps": sum(h["steps"] for h in history),
                         "loss": next((h["loss"] for h in reversed(history) if h["loss"] is not None), None),
                         **precision_metrics(recipe, training_dtype(recipe))},
               "data": data.reports, "truncation": encoder.stats.to_dict(), "recipe": recipe_to_dict(recipe)}
    if data.eval:
        metrics["eval"] = last_eval  # of the final model, written to eval.json
    write_json(out / "metrics.json", metrics)
    return metrics


@dataclass
class _StarRun:
    """What every STaR iteration of one run reads."""

    recipe: object
    variant: object
    base: str
    out: Path
    tok: object
    initial: torch.nn.Module
    prompt: JudgePrompt
    encoder: ChatEncoder
    settings: object
    inputs: list


def _star_iteration(run: _StarRun, model: torch.nn.Module, it: int) -> tuple[torch.nn.Module, dict]:
    """One iteration: sample rationales with ``model``, keep the right ones, fine-tune on them (from the
    initial model with ``variant.restart``); returns the new model and the iteration's record."""
    from rewardlab.models.generation import CachedBackend, make_backend
    from rewardlab.train.layers import apply_lora

    recipe, variant, tok = run.recipe, run.variant, run.tok
    t0 = time.perf_counter()
    backend = make_backend(variant.backend, model, tok, _checkpoint_for_vllm(variant, model, tok, run.settings, run.out, it),
                           batch_size=recipe.train.batch_size)
    if it == 1 and variant.sample_cache:  # the initial model: its samples are shared with other runs
        backend = CachedBackend(backend, variant.sample_cache, _weights_key(run.base))
    gen = generate_star_data(backend, tok, run.prompt, run.inputs, variant.k, variant.temperature,
                             variant.max_new_tokens, recipe.train.seed + 1000 * it, variant.rationalize,
                             max(recipe.data.max_length - variant.max_new_tokens, 8))
    rows = training_rows(gen, run.encoder, run.prompt, dpo=variant.needs_rejected_logps)
    record = {"iteration": it, **gen.stats, "train_examples": len(rows),
              "generate_seconds": round(time.perf_counter() - t0, 2)}
    if not rows:
        log.warning("STaR iteration %d kept no rationale: the model is unchanged", it)
        return model, {**record, "steps": 0, "loss": None}
    nxt = copy.deepcopy(run.initial if variant.restart else model)
    if recipe.model.lora_r:
        nxt = apply_lora(nxt, recipe, task_type="CAUSAL_LM")
    fitted = fit(recipe, variant, nxt, tok, rows, run.out / f"iter-{it}")
    model = nxt.merge_and_unload() if hasattr(nxt, "merge_and_unload") else nxt
    return model, {**record, "steps": fitted["steps"], "loss": fitted["loss"]}


def _weights_key(base: str) -> str:
    """Names the initial weights: the model path plus, for a local directory, its weight files' sizes and
    modification times (a model rewritten in place gets fresh samples)."""
    files = sorted(Path(base).glob("*.safetensors")) if Path(base).is_dir() else []
    return jsonout.dumps([base, [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]])


def _checkpoint_for_vllm(variant, model, tok, settings, out: Path, it: int) -> str | None:
    """vLLM loads weights from disk: the current model is saved to ``iter-N/model`` for it; the
    transformers backend uses the model in memory (``None``)."""
    from rewardlab.models.generation import vllm_available

    if variant.backend == "transformers" or (variant.backend == "auto" and not vllm_available()):
        return None
    return str(save_judge(copy.deepcopy(model), tok, settings, out / f"iter-{it}" / "model"))
