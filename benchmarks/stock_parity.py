"""Stock parity: does a saved rewardlab checkpoint score the same in the tools users already run?

A SmolLM2-135M-Instruct reward model (``--model DIR``, or a fresh one with a seeded head) is saved with
rewardlab's own save path into a temporary directory. Both sides of the first ``--pairs`` HH-harmless
pairs become ``2 x pairs`` conversations, rendered with the checkpoint's chat template, and are scored:

- by rewardlab: ``load_scorer(dir).score(convs)`` (the reference);
- by stock ``AutoModelForSequenceClassification.from_pretrained(dir)`` on
  ``tok.apply_chat_template(conv, tokenize=False)``: one sequence at a time, a right-padded batch and a
  left-padded batch (``tok(texts, padding=True)``);
- by ``pipeline("text-classification", model=dir, function_to_apply="none")``;
- by TRL's ``RewardTrainer`` tokenisation of ``{"chosen", "rejected"}`` conversations and its
  ``DataCollatorForPreference`` batch (skipped when TRL is not installed);
- by the server's OpenRLHF ``/get_reward`` (in process), fed the rendered text, and fed what an OpenRLHF
  policy sends: its decoded batch, padded with SmolLM2's own pad ``<|im_end|>``, the response ending at
  the generated EOS.

Printed: max |reward - rewardlab| per path, in fp32 (1e-4 is the promise for a different batch layout).

    python benchmarks/stock_parity.py [--pairs 5] [--model DIR] [--out benchmarks/results/stock_parity.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, data_path, machine_info, table, write_json

PROMISE = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="HH-RLHF jsonl(.gz) file")
    p.add_argument("--pairs", type=int, default=5, help="pairs to score (both sides: 2x conversations)")
    p.add_argument("--model", default=None, help="a trained scalar RM directory (default: fresh SmolLM2 RM)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh model's head")
    p.add_argument("--out", default="benchmarks/results/stock_parity.json", help="result file")
    return p.parse_args(argv)


def conversations(path: Path, n: int) -> list[list[dict]]:
    """Chosen sides of the first ``n`` pairs, then their rejected sides."""
    from rewardlab.data import load_pairs

    pairs, _ = load_pairs(path, format="hh", lenient=True, limit=n)
    return [[*p.prompt, *getattr(p, side)] for side in ("chosen", "rejected") for p in pairs]


def save_checkpoint(args: argparse.Namespace, out: Path) -> Path:
    """The RM under test, written by rewardlab's save path (what users hand to their tools)."""
    from transformers import AutoTokenizer, set_seed

    from rewardlab.models.loading import load_reward_model
    from rewardlab.models.scalar import build_reward_model, save_reward_model

    src = args.model or "smollm2"
    tok = AutoTokenizer.from_pretrained(args.model) if args.model else None
    if args.model:
        model = load_reward_model(args.model, torch.float32)
    else:
        from rewardlab.assets import smollm2_path

        tok = AutoTokenizer.from_pretrained(smollm2_path())
        set_seed(args.seed)
        model = build_reward_model(src, tok).eval()
    return save_reward_model(model, tok, out)


@torch.no_grad()
def stock_rows(rm_dir: Path, convs: list[list[dict]]) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(rm_dir))
    texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
    out = {"stock, one sequence": torch.stack([model(**tok(t, return_tensors="pt")).logits[0, 0] for t in texts])}
    for side in ("right", "left"):
        tok.padding_side = side
        out[f"stock, {side}-padded batch"] = model(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0]
    tok.padding_side = "right"
    pipe = pipeline("text-classification", model=str(rm_dir), function_to_apply="none", device="cpu")
    for bs in (1, 4):
        out[f"pipeline, batch_size={bs}"] = torch.tensor([r["score"] for r in pipe(texts, batch_size=bs)])
    return out


@torch.no_grad()
def trl_row(rm_dir: Path, convs: list[list[dict]]) -> dict[str, torch.Tensor]:
    try:
        import trl
    except ImportError:
        return {}
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(rm_dir))
    n = len(convs) // 2
    rows = [{"chosen": convs[i], "rejected": convs[n + i]} for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        args = trl.RewardConfig(output_dir=tmp, report_to=[], use_cpu=True, bf16=False)
        trainer = trl.RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                    processing_class=tok)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])  # chosen, then rejected
        got = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    return {"TRL RewardTrainer tokenisation + DataCollatorForPreference": got}


def server_rows(rm_dir: Path, convs: list[list[dict]]) -> dict[str, torch.Tensor]:
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from rewardlab import load_scorer
    from rewardlab.serve.app import create_app
    from rewardlab.serve.settings import ServeSettings

    tok = AutoTokenizer.from_pretrained(str(rm_dir))
    texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
    generated = ["<|im_end|>" * 2 + tok.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True)
                 + c[-1]["content"] + "<|im_end|>" * 3 for c in convs]
    out = {}
    with TestClient(create_app(load_scorer(str(rm_dir)), ServeSettings(max_batch=len(convs)))) as client:
        for name, queries in (("server /get_reward, rendered text", texts),
                              ("server /get_reward, OpenRLHF policy batch (padded, ends at EOS)", generated)):
            r = client.post("/get_reward", json={"query": queries})
            r.raise_for_status()
            out[name] = torch.tensor(r.json()["rewards"])
    return out


def main(argv: list[str] | None = None) -> dict:
    from rewardlab import load_scorer

    args = parse_args(argv)
    machine = machine_info(torch.device("cpu"))
    convs = conversations(data_path(args.data), args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        rm_dir = save_checkpoint(args, Path(tmp) / "rm")
        ours = load_scorer(str(rm_dir)).score(convs)
        rows = {**stock_rows(rm_dir, convs), **trl_row(rm_dir, convs), **server_rows(rm_dir, convs)}
    diffs = {name: float((got - ours).abs().max()) for name, got in rows.items()}
    print(f"{len(convs)} conversations, rewards from {float(ours.min()):.3f} to {float(ours.max()):.3f}")
    print(table([["how the checkpoint was fed", "max |Δ| vs rewardlab", f"<= {PROMISE:g}"]]
                + [[k, f"{v:.2e}", "yes" if v <= PROMISE else "NO"] for k, v in diffs.items()]))
    result = {"args": vars(args), "machine": machine, "rewardlab": ours.tolist(),
              "max_abs_diff": diffs}
    print(f"wrote {write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
