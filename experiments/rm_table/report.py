"""README.md, results.json and the accuracy-vs-CPU plot of the reward-model table, from ``runs/rows`` only."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np

from rewardlab import jsonout
from rewardlab.eval.baselines import length_outcomes as baseline_outcomes
from rewardlab.precision import cpu_name

SPLITS = ("ID", "OOD")


def planned_rows(groups: list[str]) -> dict[str, str]:
    """Every row the study knows, in priority order, and the group (``--groups`` value) that runs it."""
    rows = {"prefer-longer": "baselines", "prefer-shorter": "baselines"}
    for g in groups:
        what = g.split("@")[0]
        if what in ("smollm2", "minilm"):
            for pooling in ("last", "mean"):
                for head in ("linear", "mlp"):
                    rows[f"{what}-{pooling}-{head}@{g.split('@')[1]}"] = g
        elif what.startswith("lora"):
            rows[g] = g
    return rows


def length_outcomes(pairs, direction: str) -> np.ndarray:
    """``prefer the longer`` / ``shorter`` outcomes (``direction``: ``longer`` or ``shorter``)."""
    return baseline_outcomes(pairs, f"prefer_{direction}")


def load_rows(runs: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((runs / "rows").glob("*.json"))}


def differences(rows: dict, by_id: dict, seed: int) -> None:
    """Add ``vs_longer`` (difference, interval, baseline accuracy on the same pairs) to each split of each row."""

    from rewardlab.data.bon_pairs import instruction_of
    from rewardlab.eval.study import paired_difference

    for row in rows.values():
        for split in SPLITS:
            got = row[split]["outcomes"]
            pairs = [by_id[i] for i in got]
            base = dict(zip(got, length_outcomes(pairs, "longer").tolist(), strict=True))
            diff, (lo, hi) = paired_difference(got, base, seed=seed, groups=instruction_of)
            row[split]["vs_longer"] = {"difference": diff, "ci95": [lo, hi],
                                      "longer_accuracy": float(np.mean(list(base.values())))}


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def acc_cell(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{pct(r['accuracy'])} [{pct(lo)}, {pct(hi)}]"


def diff_cell(r: dict) -> str:
    d = r["vs_longer"]
    lo, hi = d["ci95"]
    mark = " ✓" if lo > 0 else " ✗" if hi < 0 else ""
    return f"{100 * d['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]{mark}"


def table(rows: dict, planned: dict[str, str]) -> str:
    from rewardlab.eval.study import markdown_table

    cols = ["ID acc [95% CI]", "OOD acc [95% CI]", "ID len-ctrl", "ID − longer [CI]", "OOD − longer [CI]",
            "CPU-min", "wall-min", "train pairs / instr.", "eval pairs ID / OOD"]
    names = [n for n in planned] + [n for n in rows if n not in planned]
    cells = {}
    for n in names:
        r = rows.get(n)
        if r is None:
            cells[(n, cols[0])] = f"not run (CPU budget): `--groups {planned[n]}`"
            continue
        c = r["cost"]
        cells.update({(n, cols[0]): acc_cell(r["ID"]), (n, cols[1]): acc_cell(r["OOD"]),
                      (n, cols[2]): pct(r["ID"]["length_controlled"]),
                      (n, cols[3]): diff_cell(r["ID"]), (n, cols[4]): diff_cell(r["OOD"]),
                      (n, cols[5]): f"{c['cpu_s'] / 60:.1f}", (n, cols[6]): f"{c['wall_s'] / 60:.1f}",
                      (n, cols[7]): f"{r['train']['pairs']} / {r['train']['instructions']}",
                      (n, cols[8]): f"{r['ID']['n']} / {r['OOD']['n']}"})
    return markdown_table(names, cols, cells, row_header="row")


def plot(rows: dict, path: Path, title: str) -> None:
    from rewardlab.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    base = rows.get("prefer-longer")
    for name, r in rows.items():
        if r["kind"] == "baseline":
            continue
        x, acc, (lo, hi) = r["cost"]["cpu_s"] / 60, 100 * r["ID"]["accuracy"], r["ID"]["ci95"]
        ax.errorbar([x], [acc], yerr=[[acc - 100 * lo], [100 * hi - acc]], fmt="o", capsize=2,
                    color={"frozen": "C0", "lora": "C3"}[r["kind"]])
        ax.annotate(name, (x, acc), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if base:
        ax.axhline(100 * base["ID"]["accuracy"], color="C2", ls="--", lw=1, label="prefer the longer answer")
    ax.axhline(50, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("CPU-minutes (features from an empty cache + head, or LoRA training + eval)")
    ax.set_ylabel("held-out ID accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def standing(rows: dict) -> list[str]:
    """What the table shows, computed: best overall, best per CPU-minute, wins over length."""
    models = {n: r for n, r in rows.items() if r["kind"] != "baseline"}
    lines = []
    if not models:
        return ["- No model row has finished yet."]
    best = max(models, key=lambda n: models[n]["ID"]["accuracy"])
    lines.append(f"- Best held-out ID accuracy: `{best}`, {acc_cell(models[best]['ID'])}; "
                 f"\"prefer the longer answer\" on the same pairs: {pct(models[best]['ID']['vs_longer']['longer_accuracy'])}.")
    above = {n: r for n, r in models.items() if r["ID"]["ci95"][0] > 0.5}
    if above:
        cheap = min(above, key=lambda n: above[n]["cost"]["cpu_s"])
        lines.append(f"- Cheapest row whose ID interval lies above 50%: `{cheap}` "
                     f"({acc_cell(above[cheap]['ID'])}, {above[cheap]['cost']['cpu_s'] / 60:.1f} CPU-min).")
    per = {n: (r["ID"]["accuracy"] - 0.5) * 100 / max(r["cost"]["cpu_s"] / 60, 1e-9) for n, r in models.items()}
    top = max(per, key=per.get)
    lines.append(f"- Most accuracy above chance per CPU-minute: `{top}` ({per[top]:+.2f} points per CPU-minute).")
    for split in SPLITS:
        win = [n for n, r in models.items() if r[split]["vs_longer"]["ci95"][0] > 0]
        lose = [n for n, r in models.items() if r[split]["vs_longer"]["ci95"][1] < 0]
        lines.append(f"- {split}: rows that beat \"prefer the longer answer\" on the same pairs (paired cluster "
                     f"interval above 0): {', '.join(f'`{n}`' for n in win) or 'none'}; "
                     f"below it: {', '.join(f'`{n}`' for n in lose) or 'none'}.")
    sizes = sorted({(r["train"]["pairs"], r["train"]["instructions"]) for r in models.values()})
    lines.append("- What this does not show: every row rests on one split, one seed and "
                 + " or ".join(f"{p} training pairs from {i} instructions" for p, i in sizes)
                 + "; how the rows scale with more pairs is the learning curve's question, and rows marked "
                 "\"not run\" were left out for CPU time, not because they lost.")
    return lines


def choices(rows: dict) -> str:
    out = []
    for n, r in rows.items():
        if r["kind"] == "frozen":
            c = r["choice"]
            out.append(f"- `{n}`: lr {c['lr']:g}, weight decay {c['weight_decay']:g}, {c['epochs']} epochs "
                       f"(validation accuracy {pct(c['val_accuracy'])})")
    return "\n".join(out) or "- (no frozen row yet)"


def extraction_lines(runs: Path) -> str:
    out = []
    for p in sorted((runs / "groups").glob("*.json")):
        g = json.loads(p.read_text())
        rate = f"{g['tokens_computed'] / g['cpu_s']:.0f} tokens per CPU-s, {g['tokens_computed'] / g['wall_s']:.0f} per wall-s" \
            if g["tokens_computed"] and g["cpu_s"] else "all from the cache"
        out.append(f"- `{p.stem}`: {g['unique_tokens']} tokens in the row's unique sequences; this run computed "
                   f"{g['computed']} sequences ({g['tokens_computed']} tokens) in {g['cpu_s'] / 60:.1f} CPU-min / "
                   f"{g['wall_s'] / 60:.1f} wall-min ({rate}), dtype {g['dtype']}")
    return "\n".join(out) or "- none yet"


def write(args, sets: dict, runs: Path, argv, groups: list[str]) -> None:
    from heads import BATCH, EPOCHS, LRS, MLP_HIDDEN, WEIGHT_DECAYS

    out = Path(args.out)
    rows = load_rows(runs)
    built = sets["built"]
    differences(rows, {p.id: p for p in [*built.heldout, *built.ood]}, args.seed)
    command = " ".join(["python experiments/rm_table/run.py", shlex.join(sys.argv[1:] if argv is None else argv)])
    log_path = runs / "commands.json"
    commands = json.loads(log_path.read_text()) if log_path.exists() else []
    if command.strip() not in commands:
        commands.append(command.strip())
        log_path.write_text(jsonout.dumps(commands, indent=2) + "\n")
    cpu = f"{cpu_name()}, {_cores()} cores visible"
    results = {"args": {k: v for k, v in vars(args).items() if k not in ("runs", "out")}, "cpu": cpu,
               "commands": commands, "data": {"builder": built.stats, "used": sets["used"]},
               "rows": rows, "extraction": {p.stem: json.loads(p.read_text()) for p in sorted((runs / "groups").glob("*.json"))}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(jsonout.dumps(results, indent=1) + "\n")
    plot(rows, out / "accuracy_vs_cpu.png", f"Held-out ID accuracy vs CPU-minutes ({cpu}); bars: cluster 95% CI")
    u = sets["used"]
    cmds = "\n".join(commands)
    text = f"""# Reward-model table: held-out accuracy per CPU-minute on gold-labelled AlpacaEval pairs

Written by `experiments/rm_table/run.py`; every number below comes from `results.json` beside this file.

## Commands (in the order they were run; each reuses the rows already in `runs/`)

```bash
{cmds}
```

CPU: {cpu}. Timings are CPU seconds (user + system, this process and its children, from
`getrusage`) and wall seconds; the machine was shared with other jobs at times, so wall time is the
noisier of the two, and CPU time (two threads) is about twice the wall time of an unloaded machine.

## Table

{table(rows, planned_rows(groups))}

✓ / ✗: the paired interval against "prefer the longer answer" lies above / below 0.

![accuracy vs CPU](accuracy_vs_cpu.png)

## Rules

- **Pairs**: `rewardlab.data.bon_pairs` on `{Path(args.bon).name}`: every two samples of one instruction whose
  GPT-4 gold scores differ by at least {args.min_gap} (the higher is chosen; `margin` is the gap). Splits by
  instruction (seed {args.split_seed}): {', '.join(built.stats['id_sources'])} are in-distribution, 30% of their
  instructions held out (**ID**); {', '.join(built.stats['ood_sources'])} are out of distribution (**OOD**).
- **Used**: training {u['train']['pairs']} pairs from {u['train']['instructions']} instructions (the first ones in
  split order, whole instructions{'; capped by --train-pairs' if args.train_pairs else ''}); of them
  {u['validation']['pairs']} pairs from the last {u['validation']['instructions']} training instructions are the
  validation split the head's settings are chosen on. ID: {u['ID']['pairs']} pairs from {u['ID']['instructions']}
  instructions; OOD: {u['OOD']['pairs']} pairs from {u['OOD']['instructions']} instructions (one pair per
  instruction in turn{', capped by --id-pairs / --ood-pairs' if args.id_pairs or args.ood_pairs else ''}).
  Built from the whole file: {built.stats['pairs']['train']['total']} training, {built.stats['pairs']['heldout']['total']}
  held-out and {built.stats['pairs']['ood']['total']} OOD pairs.
- **Intervals**: 95% cluster bootstrap (2,000 resamples of instructions with replacement, not of pairs):
  the pairs of one instruction share its prompt and samples and are strongly correlated, so a pair
  bootstrap would understate the interval. The difference against "prefer the longer answer" is paired
  (both judged on the same resampled instructions). **len-ctrl**: mean of the accuracy on pairs whose
  chosen answer is longer and on those where it is shorter (`rewardlab.eval.baselines`); any length rule scores 50.
- **Frozen rows** (`<backbone>-<pooling>-<head>@<tokens>`): features from `rewardlab.models.feature_cache`
  (float32, one backbone pass fills both poolings; sequences shorter than the limit share their features
  across limits). `last` is what a checkpoint's head reads (SmolLM2: the final hidden state at the last
  token of the chat-template rendering; MiniLM: its pooled output); `mean` averages the final hidden
  states over all tokens. Features are standardised with the training responses' mean and standard
  deviation. Heads are rewardlab's (`make_head`: linear without bias, or MLP {MLP_HIDDEN} with ReLU),
  trained with `bradley_terry_loss` by AdamW, batch {BATCH} pairs; the grid lr {list(LRS)} × weight decay
  {list(WEIGHT_DECAYS)} × epochs {list(EPOCHS)} is scored on the validation instructions and the best setting
  refitted on every training pair. `+margin`: the row with the best validation accuracy, trained again with
  the gold gap as the margin (`bt_margin`'s loss).
- **CPU-min of a frozen row** = computing every feature it reads from an empty cache (its unique
  sequences' tokens at the throughput its extraction measured) + its head's grid and refit. The poolings
  share one pass, so a row's extraction is what a user who wants only that row would pay.
- **LoRA rows** (`lora<N>@<tokens>`): `rewardlab train`, variant `bt`, LoRA r={args.lora_r} on the last N blocks
  (all: every block), {args.lora_epochs:g} epoch(s), batch {args.batch_size}, lr {args.lora_lr:g}, `train.dtype={args.dtype}`,
  on the first {args.lora_train_pairs or 'all'} training pairs (whole instructions); evaluated by the
  training's own final evaluation on the first {args.lora_eval_pairs} ID and OOD pairs (`data.eval_size`, a
  prefix of the sets above, so its baseline column is computed on its own pairs). CPU-min covers loading,
  training and both evaluations.

## Head settings chosen on the validation instructions

{choices(rows)}

## Feature extraction

{extraction_lines(runs)}

## Where the project stands

{chr(10).join(standing(rows))}
"""
    (out / "README.md").write_text(text)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
