"""Training generative judges: SFT on judge prompts (GenRM, STaR) and DPO on rationale pairs (STaR-DPO).

An example is a judge prompt (rendered with the judge model's chat template, ending in the generation
prompt) and a target: the preferred response's indicator token (GenRM) or a rationale that ends in
the correct verdict (STaR). The loss only sees target tokens. DPO examples hold two targets for the
same prompt, the correct rationale first; the reference is the model before the update, whose
log-probabilities are computed once and cached with the rows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Trainer

from rewardlab.data.encode import ChatEncoder, Encoded
from rewardlab.losses import ResponseLogps
from rewardlab.models.judge import JudgePrompt
from rewardlab.models.judge_scorer import JudgeScorer, JudgeSettings, write_judge_manifest
from rewardlab.models.lm import TargetLogps, right_pad, sequence_logps
from rewardlab.train.layers import apply_lora
from rewardlab.types import PreferencePair
from rewardlab.variants import Variant

log = logging.getLogger("rewardlab")


def both_orders(pair: PreferencePair):
    """``(first, second, label)`` for the two orders of a pair; ``label`` is the better one's index."""
    return [(pair.chosen, pair.rejected, 0), (pair.rejected, pair.chosen, 1)]


def target_example(encoder: ChatEncoder, prompt: JudgePrompt, pair: PreferencePair, first, second,
                   target: str, cot: bool) -> Encoded:
    """The judge prompt for (first, second) as the prompt part and ``target`` as the assistant turn."""
    msgs = prompt.messages(pair.prompt, first, second, cot=cot)
    return encoder.encode(msgs, [{"role": "assistant", "content": target}], pair.id)


def genrm_examples(pairs: Sequence[PreferencePair], encoder: ChatEncoder, prompt: JudgePrompt) -> list[dict]:
    """GenRM SFT rows, two per pair (both orders), target = the preferred response's indicator."""
    rows = []
    for p in pairs:
        for first, second, label in both_orders(p):
            rows.append(sft_row(target_example(encoder, prompt, p, first, second, prompt.indicators[label], False)))
    return rows


def sft_row(enc: Encoded) -> dict:
    return {"ids": enc.ids, "start": enc.prompt_len}


def dpo_row(good: Encoded, bad: Encoded) -> dict:
    return {"ids": good.ids, "start": good.prompt_len, "rejected_ids": bad.ids, "rejected_start": bad.prompt_len}


@dataclass
class JudgeCollator:
    """Rows → ``input_ids``, ``attention_mask``, ``target_mask`` ``(n, L)`` right-padded; DPO rows put the
    correct targets in rows ``0..B−1`` and the wrong ones in ``B..2B−1``, with ``ref_logps`` ``(2B,)``."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        seqs, starts = [r["ids"] for r in rows], [r["start"] for r in rows]
        if "rejected_ids" in rows[0]:
            seqs += [r["rejected_ids"] for r in rows]
            starts += [r["rejected_start"] for r in rows]
        ids, mask, target = right_pad(seqs, starts, self.pad_id)
        out = {"input_ids": ids, "attention_mask": mask, "target_mask": target}
        if "ref_logps" in rows[0]:
            out["ref_logps"] = torch.tensor([r["ref_logps"] for r in rows] + [r["ref_rejected_logps"] for r in rows])
        return out


class JudgeTrainer(Trainer):
    """A Trainer whose model returns summed target log-probabilities and whose loss is ``variant.judge_loss``."""

    def __init__(self, *args, variant: Variant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.variant = variant
        self.model_accepts_loss_kwargs = False  # judge_loss is already a batch mean

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        ref = inputs.pop("ref_logps", None)
        logps, tokens = model(**inputs)
        if self.variant.needs_rejected_logps:
            b = logps.shape[0] // 2
            lp = ResponseLogps(chosen=logps[:b], chosen_tokens=tokens[:b], rejected=logps[b:],
                               ref_chosen=ref[:b] if ref is not None else None,
                               ref_rejected=ref[b:] if ref is not None else None)
        else:
            lp = ResponseLogps(chosen=logps, chosen_tokens=tokens)
        loss = self.variant.judge_loss(lp)
        return (loss, logps) if return_outputs else loss


def add_reference(rows: list[dict], model: torch.nn.Module, pad_id: int, batch_size: int = 8) -> list[dict]:
    """DPO rows with ``ref_logps`` / ``ref_rejected_logps``: summed target log-probabilities under
    ``model`` as it is now (the reference: call before training)."""
    seqs = [r["ids"] for r in rows] + [r["rejected_ids"] for r in rows]
    starts = [r["start"] for r in rows] + [r["rejected_start"] for r in rows]
    lp = sequence_logps(model, seqs, starts, pad_id, batch_size)[0].tolist()
    n = len(rows)
    return [{**r, "ref_logps": lp[i], "ref_rejected_logps": lp[n + i]} for i, r in enumerate(rows)]


def fit(recipe, variant: Variant, model, tok, rows: list[dict], out: Path) -> dict:
    """Train ``model`` in place on ``rows`` with the recipe's ``train.*`` settings; return
    ``steps``, ``loss`` (mean training loss), ``examples``, ``log_history`` and ``dtype`` / ``dtype_auto``
    (what training computed in, see :func:`rewardlab.train.setup.precision_metrics`)."""
    from rewardlab.train.setup import precision_metrics, training_args, training_dtype

    if variant.needs_reference:
        rows = add_reference(rows, model, tok.pad_token_id or 0, recipe.train.batch_size)
    random.Random(recipe.train.seed).shuffle(rows)
    module = TargetLogps(model)
    dtype = training_dtype(recipe)
    args = training_args(recipe, out, False, False, dtype)
    trainer = JudgeTrainer(model=module, args=args, train_dataset=rows, data_collator=JudgeCollator(tok.pad_token_id or 0),
                           variant=variant)
    result = trainer.train()
    model.eval()
    return {"examples": len(rows), "steps": result.global_step, "loss": result.training_loss,
            "log_history": trainer.state.log_history, **precision_metrics(recipe, dtype)}


def save_judge(model, tok, settings: JudgeSettings, path: Path) -> Path:
    """A plain causal-LM directory (LoRA merged) plus ``rewardlab_judge.json``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    write_judge_manifest(path, settings)
    return path


def judge_settings(variant: Variant, seed: int = 0) -> JudgeSettings:
    """How a model trained as ``variant`` judges (what its manifest says)."""
    opts = {k: getattr(variant, k) for k in ("k", "temperature", "max_new_tokens", "backend") if hasattr(variant, k)}
    from rewardlab.models.judge import PROMPTS, judge_prompt

    # A prompt file is stored by value: the judge directory must not depend on the working directory.
    prompt = variant.prompt if variant.prompt in PROMPTS else judge_prompt(variant.prompt).to_dict()
    return JudgeSettings(method=variant.method, kind=variant.name, prompt=prompt, seed=seed, **opts)


def evaluate_judge(scorer: JudgeScorer, pairs: Sequence[PreferencePair], out: Path | None, seed: int = 0) -> dict:
    from rewardlab.eval.pairwise import evaluate_pairs, write_results

    summary, rows = evaluate_pairs(scorer, pairs, seed=seed)
    if out is not None:
        write_results(summary, rows, out)
    return summary


def train_judge_model(recipe) -> dict:
    """``rewardlab train`` for an ``is_generative`` variant that trains once (GenRM SFT; the
    ``self_improving`` ones run :func:`rewardlab.train.star.run_star`); writes ``final/`` (a judge directory) and ``metrics.json``."""
    import time

    from transformers import set_seed

    from rewardlab.config import recipe_to_dict
    from rewardlab.models.judge import judge_prompt
    from rewardlab.models.lm import load_causal_lm
    from rewardlab.train.report import write_json
    from rewardlab.train.setup import load_tokenizer, prepare_data
    from rewardlab.variants import make_variant

    variant = make_variant(recipe.variant.name, recipe.variant.options)
    if variant.self_improving:
        raise ValueError(f"variant {variant.name!r} trains by the STaR loop: rewardlab.train.star.run_star")
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    base, _ = load_tokenizer(recipe)
    data = prepare_data(recipe)
    model, tok = load_causal_lm(base, torch.float32, recipe.model.trust_checkpoint)
    if recipe.model.lora_r:
        model = apply_lora(model, recipe, task_type="CAUSAL_LM")
    prompt = judge_prompt(variant.prompt)
    encoder = ChatEncoder(tok, max_length=recipe.data.max_length, min_prompt_tokens=recipe.data.min_prompt_tokens)
    rows = genrm_examples(data.train, encoder, prompt)
    start = time.perf_counter()
    stats = fit(recipe, variant, model, tok, rows, out)
    seconds = time.perf_counter() - start
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    settings = judge_settings(variant, recipe.train.seed)
    final = save_judge(model, tok, settings, out / "final")
    metrics = {"output_dir": str(out), "final_model": str(final), "variant": variant.name, "processes": 1,
               "train_seconds": round(seconds, 2),
               "train": {"pairs": len(data.train), "steps": stats["steps"], "loss": stats["loss"],
                         "examples": stats["examples"], "dtype": stats["dtype"], "dtype_auto": stats["dtype_auto"]},
               "log_history": stats["log_history"], "data": data.reports, "truncation": encoder.stats.to_dict(),
               "recipe": recipe_to_dict(recipe)}
    if data.eval:
        scorer = JudgeScorer(model, tok, settings, max_length=recipe.data.max_length)
        metrics["eval"] = evaluate_judge(scorer, data.eval, out / "eval.json", recipe.train.seed)
    write_json(out / "metrics.json", metrics)
    return metrics
