"""Which block and pooling of frozen SmolLM2 make the best reward features: chosen on training instructions only.

One backbone pass per text reads the hidden states after every ``--every``-th block of SmolLM2 and pools
them three ways: the last token (what a stock classifier reads), the mean over every token, and the mean
over the response's tokens only. For each (block, pooling), a Bradley-Terry linear head (L2-regularised
logistic regression on standardised feature differences, fitted by L-BFGS) is scored by 5-fold
cross-validation over the training instructions, with its L2 weight chosen the same way; the held-out
in-distribution and OOD accuracies of the chosen fit are reported beside it, and so is "prefer the
longer answer", but the choice is made on the cross-validation column alone. Intervals resample
instructions. Writes ``README.md`` and ``results.json`` here.

    python experiments/layers/run.py
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(HERE.parent / "rm_table"))

POOLINGS = ("last", "mean", "response")
L2S = (0.01, 0.1, 1.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"))
    p.add_argument("--model", default="smollm2")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--train-instructions", type=int, default=60)
    p.add_argument("--id-instructions", type=int, default=50)
    p.add_argument("--ood-instructions", type=int, default=30)
    p.add_argument("--every", type=int, default=3, help="read the hidden states after every k-th block")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=str(HERE / "runs"))
    p.add_argument("--out", default=str(HERE))
    return p.parse_args(argv)


def texts(args, built, records):
    """Every labelled sample of the chosen instructions of each split: (split, instruction id, sample
    index, gold, characters, conversation)."""
    from rewardlab.data.bon_pairs import instruction_of, take_instructions

    rec = {r.id: r for r in records}
    out = []
    for split, pairs, n in (("train", built.train, args.train_instructions),
                            ("ID", built.heldout, args.id_instructions), ("OOD", built.ood, args.ood_instructions)):
        ids = list(dict.fromkeys(instruction_of(p.id) for p in take_instructions(pairs, n)[0]))
        for i in ids:
            r = rec[i]
            for j in r.labelled:
                out.append((split, i, j, r.gold[j], len(r.samples[j]), r.prompt + r.response(j)))
    return out


@torch.inference_mode()
def extract(args, scorer, rows) -> tuple[dict[str, np.ndarray], float]:
    """Features ``(texts, hidden)`` per ``<pooling><block>`` from one pass per batch; and the seconds taken."""
    from tqdm.auto import tqdm

    from rewardlab.models.batching import length_batches, pad
    from rewardlab.models.scalar import backbone_of

    encoded = [scorer.encoder.encode_conversation(r[5]) for r in rows]
    seqs = [e.ids for e in encoded]
    starts = [e.prompt_len for e in encoded]  # the response's first token
    backbone = backbone_of(scorer.model)
    blocks = list(range(args.every, backbone.config.num_hidden_layers + 1, args.every))
    hidden = backbone.config.hidden_size
    feats = {f"{p}{b}": np.zeros((len(seqs), hidden), np.float32) for b in blocks for p in POOLINGS}
    start = time.time()
    with tqdm(total=sum(map(len, seqs)), unit="tok", desc="hidden states") as bar:
        for group in length_batches([len(s) for s in seqs], 8192):
            b = pad([list(seqs[i]) for i in group], scorer.pad_id)
            out = backbone(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False,
                           output_hidden_states=True)
            m = b.attention_mask.float()
            resp = torch.zeros_like(m)
            for k, i in enumerate(group):
                resp[k, min(starts[i], len(seqs[i]) - 1):len(seqs[i])] = 1
            n = m.sum(1).long()
            for blk in blocks:  # hidden_states[blk]: after block blk (the last one through the final norm)
                h = (out.last_hidden_state if blk == len(out.hidden_states) - 1 else out.hidden_states[blk]).float()
                got = {"last": h[torch.arange(len(group)), n - 1],
                       "mean": (h * m[..., None]).sum(1) / m.sum(1, keepdim=True),
                       "response": (h * resp[..., None]).sum(1) / resp.sum(1, keepdim=True)}
                for p, v in got.items():
                    feats[f"{p}{blk}"][group] = v.numpy()
            bar.update(int(m.sum()))
    return feats, time.time() - start


def make_pairs(rows, split: str, gap: float) -> np.ndarray:
    """(chosen row, rejected row) of every two samples of one instruction whose gold differs by >= gap."""
    by: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        if r[0] == split:
            by.setdefault(r[1], []).append(k)
    out = [(a, b) if rows[a][3] > rows[b][3] else (b, a)
           for ks in by.values() for a, b in itertools.combinations(ks, 2) if abs(rows[a][3] - rows[b][3]) >= gap]
    return np.array(out, dtype=int).reshape(-1, 2)


def fit(x: np.ndarray, pairs: np.ndarray, l2: float) -> np.ndarray:
    """BT linear head: minimise mean softplus(-(x_c - x_r)·w) + l2·|w|² by L-BFGS."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    d = torch.tensor(x[pairs[:, 0]] - x[pairs[:, 1]], dtype=torch.float64)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-(d @ w)).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def outcomes(score: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    c, r = score[pairs[:, 0]], score[pairs[:, 1]]
    return np.where(c == r, 0.5, (c > r).astype(float))


def study(args, rows, feats) -> dict:
    from rewardlab.eval.pairwise import bootstrap_ci

    inst = np.array([r[1] for r in rows])
    chars = np.array([r[4] for r in rows], dtype=float)
    pairs = {s: make_pairs(rows, s, 0.5) for s in ("train", "ID", "OOD")}
    order = list(dict.fromkeys(inst[pairs["train"][:, 0]]))
    folds = [set(order[k::args.folds]) for k in range(args.folds)]
    fold_of = np.array([next(k for k, f in enumerate(folds) if inst[a] in f) for a, _ in pairs["train"]])
    longer = {s: outcomes(chars, p) for s, p in pairs.items()}
    train_rows = np.array([r[0] == "train" for r in rows])
    out = {"pairs": {s: len(p) for s, p in pairs.items()},
           "instructions": {s: len(set(inst[p[:, 0]])) for s, p in pairs.items()},
           "longer": {s: float(o.mean()) for s, o in longer.items()}, "features": {}}
    for key, x in feats.items():
        x = x.astype(np.float64)
        x = (x - x[train_rows].mean(0)) / (x[train_rows].std(0) + 1e-6)
        cv = {}
        for l2 in L2S:
            o = np.zeros(len(pairs["train"]))
            for k in range(args.folds):
                held = fold_of == k
                w = fit(x, pairs["train"][~held], l2)
                o[held] = outcomes(x @ w, pairs["train"][held])
            cv[l2] = float(o.mean())
        l2 = max(cv, key=lambda v: (round(cv[v], 6), v))  # ties: the stronger regulariser
        w = fit(x, pairs["train"], l2)
        row = {"cv": cv, "l2": l2, "cv_accuracy": cv[l2]}
        for s in ("ID", "OOD"):
            o = outcomes(x @ w, pairs[s])
            g = list(inst[pairs[s][:, 0]])
            row[s] = {"accuracy": float(o.mean()), "ci95": bootstrap_ci(o, 2000, args.seed, groups=g),
                      "vs_longer": float((o - longer[s]).mean()),
                      "vs_longer_ci95": bootstrap_ci(o - longer[s], 2000, args.seed, groups=g)}
        out["features"][key] = row
        print(key, row["cv_accuracy"], row["ID"]["accuracy"], row["OOD"]["accuracy"], flush=True)
    return out


def main(argv=None) -> int:
    from run import Clock, backbone_scorer

    from rewardlab import jsonout
    from rewardlab.data.bon import load_bon_records
    from rewardlab.data.bon_pairs import build_bon_pairs
    from rewardlab.eval.study import start_study

    args = parse_args(argv)
    start_study(args, (args.bon,), args.runs, ignore=("runs", "out"))
    clock = Clock()
    records, _ = load_bon_records(args.bon)
    rows = texts(args, build_bon_pairs(records), records)
    scorer = backbone_scorer(args.model, args.max_length)
    feats, seconds = extract(args, scorer, rows)
    result = {"args": vars(args), "argv": sys.argv[1:] if argv is None else list(argv), "texts": len(rows),
              "extract_seconds": round(seconds, 1), **study(args, rows, feats), "cost": clock.read()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(jsonout.dumps(result, indent=2) + "\n")
    write_readme(result, out)
    return 0


def write_readme(result: dict, out: Path) -> None:
    from rewardlab.precision import cpu_name

    a = result["args"]

    def pct(x):
        return f"{100 * x:.1f}"

    best = max(result["features"], key=lambda k: result["features"][k]["cv_accuracy"])
    lines = ["| features | CV acc (train instr.) | L2 | ID acc [95% CI] | ID − longer [CI] | OOD acc [95% CI] | OOD − longer [CI] |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k, r in result["features"].items():
        cells = []
        for s in ("ID", "OOD"):
            x = r[s]
            cells += [f"{pct(x['accuracy'])} [{pct(x['ci95'][0])}, {pct(x['ci95'][1])}]",
                      f"{100 * x['vs_longer']:+.1f} [{100 * x['vs_longer_ci95'][0]:+.1f}, {100 * x['vs_longer_ci95'][1]:+.1f}]"]
        name = f"**{k}**" if k == best else k
        lines.append(f"| {name} | {pct(r['cv_accuracy'])} | {r['l2']:g} | " + " | ".join(cells) + " |")
    cmd = "python experiments/layers/run.py" + "".join(" " + shlex.quote(x) for x in result["argv"])
    text = ["# Which block and pooling of frozen SmolLM2 make reward features", "",
            "Written by `experiments/layers/run.py`; every number is in `results.json` beside this file.", "",
            "```bash", cmd, "```", "",
            f"CPU: {cpu_name()}. {result['texts']} texts through SmolLM2 once ({result['extract_seconds'] / 60:.1f} wall-min, "
            f"all hidden states kept); the whole run {result['cost']['cpu_s'] / 60:.1f} CPU-min, "
            f"{result['cost']['wall_s'] / 60:.1f} wall-min.", "",
            f"Pairs (gold gap >= 0.5): training {result['pairs']['train']} from {result['instructions']['train']} instructions, "
            f"ID {result['pairs']['ID']} from {result['instructions']['ID']}, OOD {result['pairs']['OOD']} from "
            f"{result['instructions']['OOD']}. \"Prefer the longer answer\": training {pct(result['longer']['train'])}, "
            f"ID {pct(result['longer']['ID'])}, OOD {pct(result['longer']['OOD'])}.", "",
            "Features `<pooling><block>`: `last` the final token, `mean` every token, `response` the response's tokens; "
            f"block 30 is the model's output (through its final norm), the others the residual stream after that block. "
            f"Each is scored by {a['folds']}-fold cross-validation over the training instructions (CV, the only column the "
            "choice looks at; its L2 weight chosen by it too), then refitted on every training pair and scored on the "
            "held-out sets. Intervals: 95% cluster bootstrap over instructions.", "",
            *lines, "",
            f"Chosen by cross-validation: **{best}**. With a few dozen instructions per fold the CV column itself is "
            "noisy (a few points); read the held-out columns as a check, not as a second chance to choose.", ""]
    (out / "README.md").write_text("\n".join(text))


if __name__ == "__main__":
    sys.exit(main())
