"""The reward-model table: held-out accuracy per CPU-minute on gold-labelled AlpacaEval pairs.

Measures, on the pairs of ``rewardlab.data.bon_pairs`` (gold gap >= 0.5; held-out in-distribution
instructions of selfinstruct / oasst / helpful_base; out-of-distribution koala / vicuna), every row
against the length-only baseline on the same pairs: frozen SmolLM2 and MiniLM features (last-token /
pooled and mean-pooled) with a linear and an MLP head at 256, 384 and 512 tokens, and LoRA on the last
N blocks of SmolLM2 through ``rewardlab train``. Intervals resample instructions (cluster bootstrap).
Writes ``README.md``, ``results.json`` and ``accuracy_vs_cpu.png`` here; runs go to ``runs/`` (not
committed) and a rerun reuses every finished row, so groups can be added one invocation at a time.

    python experiments/rm_table/run.py --groups baselines,minilm@256      # see --help for the groups
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(HERE))

GROUPS = ["baselines", "minilm@256", "minilm@384", "minilm@512", "smollm2@256", "margin", "lora4@256",
          "smollm2@384", "smollm2@512", "lora8@256", "loraall@256"]
"""Every group of rows, in the order of priority the CPU budget is spent in."""
GROUP_PATTERN = re.compile(r"baselines|margin|(smollm2|minilm|lora(\d+|all))@\d+")
HEADS = ("linear", "mlp")
POOLINGS = ("last", "mean")
log = logging.getLogger("rm_table")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bon", default=str(SHARED / "alpacaeval-bon16" / "bon16.jsonl.gz"),
                   help="best-of-n samples with gold judgements (the AlpacaEval best-of-16 file)")
    p.add_argument("--groups", default=",".join(GROUPS),
                   help="groups of rows to run, in this order, comma-separated (finished rows are reused); the default is "
                   "every group in the order the CPU budget is spent; other lengths: <backbone>@<tokens>")
    p.add_argument("--smollm2", default="smollm2", help="the decoder backbone (alias, directory or hub id)")
    p.add_argument("--minilm", default="minilm", help="the encoder backbone (alias, directory or hub id)")
    p.add_argument("--min-gap", type=float, default=0.5, help="smallest gold-score gap that makes a pair")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the builder's split of instructions")
    p.add_argument("--train-pairs", type=int, default=0,
                   help="training pairs of the frozen rows, whole instructions in split order (0: all)")
    p.add_argument("--id-pairs", type=int, default=0,
                   help="held-out ID pairs, one per instruction in turn (0: all)")
    p.add_argument("--ood-pairs", type=int, default=0, help="OOD pairs, one per instruction in turn (0: all)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of the training instructions the head's grid is chosen on")
    p.add_argument("--lora-train-pairs", type=int, default=500, help="training pairs of the LoRA rows (0: all)")
    p.add_argument("--lora-eval-pairs", type=int, default=200,
                   help="ID and OOD pairs the LoRA rows are evaluated on (each; a prefix of the frozen rows' sets)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-lr", type=float, default=5e-4)
    p.add_argument("--lora-epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step of the LoRA rows")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="LoRA training precision")
    p.add_argument("--seed", type=int, default=0, help="seed of heads, LoRA and the bootstrap")
    p.add_argument("--runs", default=str(HERE / "runs"), help="where rows, models and logs go")
    p.add_argument("--out", default=str(HERE), help="where README.md, results.json and the plot go")
    return p.parse_args(argv)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """CPU and wall seconds since it was made."""

    def __init__(self) -> None:
        self.cpu, self.wall = cpu_seconds(), time.time()

    def read(self) -> dict:
        return {"cpu_s": round(cpu_seconds() - self.cpu, 1), "wall_s": round(time.time() - self.wall, 1)}


def build_sets(args) -> dict:
    """Training pairs (capped, whole instructions), the validation instructions carved from them, and
    the ID / OOD evaluation pairs (capped, spread over instructions)."""
    from rewardlab.data.bon_pairs import bon_pairs_from_file, instruction_of, take_pairs

    built = bon_pairs_from_file(args.bon, min_gap=args.min_gap, seed=args.split_seed)
    train, n_train = take_pairs(built.train, args.train_pairs or None)
    heldout, n_id = take_pairs(built.heldout, args.id_pairs or None, spread=True)
    ood, n_ood = take_pairs(built.ood, args.ood_pairs or None, spread=True)
    order = list(dict.fromkeys(instruction_of(p.id) for p in train))
    val_inst = set(order[len(order) - max(1, round(args.val_fraction * len(order))):])
    val_idx = np.array([i for i, p in enumerate(train) if instruction_of(p.id) in val_inst], dtype=int)
    used = {"train": {"pairs": len(train), "instructions": n_train},
            "validation": {"pairs": int(val_idx.size), "instructions": len(val_inst)},
            "ID": {"pairs": len(heldout), "instructions": n_id}, "OOD": {"pairs": len(ood), "instructions": n_ood}}
    return {"built": built, "train": train, "val_idx": val_idx, "ID": heldout, "OOD": ood, "used": used}


def score_outcomes(name: str, pairs, outcomes: np.ndarray, seed: int) -> dict:
    """Accuracy with its cluster 95% interval, length-controlled accuracy and the per-pair outcomes."""
    from rewardlab.data.bon_pairs import instruction_of
    from rewardlab.eval.baselines import length_controlled
    from rewardlab.eval.pairwise import bootstrap_ci

    groups = [instruction_of(p.id) for p in pairs]
    lc = length_controlled(pairs, outcomes)
    return {"accuracy": float(outcomes.mean()), "ci95": bootstrap_ci(outcomes, 2000, seed, groups=groups),
            "n": int(outcomes.size), "instructions": len(set(groups)), "ties": int((outcomes == 0.5).sum()),
            "length_controlled": lc["length_controlled_accuracy"],
            "outcomes": {p.id: float(o) for p, o in zip(pairs, outcomes, strict=True)}}


def save_row(runs: Path, name: str, row: dict) -> None:
    from rewardlab import jsonout

    path = runs / "rows" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonout.dumps(row) + "\n")


def done(runs: Path, name: str) -> bool:
    return (runs / "rows" / f"{name}.json").exists()


def run_baselines(args, sets: dict, runs: Path) -> None:
    from report import length_outcomes

    for direction in ("longer", "shorter"):
        if done(runs, f"prefer-{direction}"):
            continue
        clock = Clock()
        row = {"group": "baselines", "kind": "baseline", "train": {"pairs": 0, "instructions": 0}}
        for split in ("ID", "OOD"):
            row[split] = score_outcomes(split, sets[split], length_outcomes(sets[split], direction), args.seed)
        save_row(runs, f"prefer-{direction}", {**row, "cost": clock.read()})


def backbone_scorer(path: str, max_length: int, num_layers: int = 0):
    """A ScalarScorer on a fresh reward model over ``path`` (its head is not used: only its features),
    on its first ``num_layers`` blocks (0: all)."""
    from transformers import AutoTokenizer

    from rewardlab.assets import resolve_model_path
    from rewardlab.models.scalar import build_reward_model, quiet_transformers
    from rewardlab.models.scorer import ScalarScorer

    local = str(resolve_model_path(path))
    tok = AutoTokenizer.from_pretrained(local)
    with quiet_transformers():
        model = build_reward_model(local, tok, num_layers=num_layers).eval()
    return ScalarScorer(model, tok, max_length=max_length, batch_tokens=8192)


def encode_sets(scorer, sets: dict) -> dict[str, tuple[list, list]]:
    """Token ids of the chosen and rejected conversations of ``train``, ``ID`` and ``OOD``."""
    return {s: (scorer.encode([p.conversation("chosen") for p in sets[s]]),
                scorer.encode([p.conversation("rejected") for p in sets[s]])) for s in ("train", "ID", "OOD")}


def unique_tokens(ids: dict) -> int:
    seen = {tuple(x) for c, r in ids.values() for x in (*c, *r)}
    return sum(len(x) for x in seen)


def extract(args, runs: Path, model_name: str, length: int, sets: dict):
    """Fill the last- and mean-pooled caches of one backbone at one length (one pass per missing
    sequence) and record what it cost: ``runs/groups/<model>@<length>.json``."""
    from rewardlab import jsonout
    from rewardlab.models.feature_cache import FeatureCache, default_root, fill_caches

    clock = Clock()
    scorer = backbone_scorer(getattr(args, model_name), length)
    caches = {p: FeatureCache(scorer.model, p, default_root()) for p in POOLINGS}
    ids = encode_sets(scorer, sets)
    todo = [x for c, r in ids.values() for x in (*c, *r)]
    missing = {tuple(x) for x in todo if any(c.get(_key(x)) is None for c in caches.values())}
    log.info("%s@%d: %d unique sequences, %d tokens; %d sequences (%d tokens) not cached yet", model_name, length,
             len({tuple(x) for x in todo}), unique_tokens(ids), len(missing), sum(map(len, missing)))
    computed = fill_caches(scorer, todo, list(caches.values()))
    path = runs / "groups" / f"{model_name}@{length}.json"
    if computed or not path.exists():
        record = {**clock.read(), "computed": computed, "tokens_computed": sum(map(len, missing)),
                  "unique_tokens": unique_tokens(ids), "dtype": str(scorer.dtype)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(jsonout.dumps(record, indent=2) + "\n")
    return scorer, caches, ids, json.loads(path.read_text())


def _key(ids) -> bytes:
    from rewardlab.models.feature_cache import sequence_key

    return sequence_key(ids)


def pair_features(scorer, cache, ids: dict, pairs) -> object:
    import torch
    from heads import PairFeatures

    from rewardlab.models.feature_cache import cached_features

    c, r = ids
    n = len(c)
    f = cached_features(scorer, list(c) + list(r), cache, progress=False)
    margin = torch.tensor([p.margin or 0.0 for p in pairs], dtype=torch.float32)
    return PairFeatures(f[:n], f[n:], margin)


def scratch_cost(group: dict) -> dict:
    """CPU and wall seconds to compute every feature the row reads from an empty cache, at the rate this
    group's extraction measured (tokens computed per CPU / wall second)."""
    if not group["tokens_computed"] or not group["cpu_s"]:
        return {"cpu_s": None, "wall_s": None}
    per_cpu, per_wall = group["tokens_computed"] / group["cpu_s"], group["tokens_computed"] / group["wall_s"]
    return {"cpu_s": round(group["unique_tokens"] / per_cpu, 1), "wall_s": round(group["unique_tokens"] / per_wall, 1),
            "tokens_per_cpu_s": round(per_cpu, 1), "tokens_per_wall_s": round(per_wall, 1)}


def run_frozen(args, sets: dict, runs: Path, model_name: str, length: int, only: list[str] | None = None,
               use_margin: bool = False) -> None:
    """Rows ``<model>-<pooling>-<head>@<length>`` (``only``: those named), each a head fitted on cached
    features; ``use_margin`` adds ``+margin`` to the name and trains with the gold gap as the margin."""
    from heads import fit_and_evaluate

    rows = only or [f"{model_name}-{p}-{h}@{length}" for p in POOLINGS for h in HEADS]
    names = {r: r + ("+margin" if use_margin else "") for r in rows}
    if all(done(runs, n) for n in names.values()):
        return
    scorer, caches, ids, group = extract(args, runs, model_name, length, sets)
    for row in rows:
        if done(runs, names[row]):
            continue
        pooling, head = row.split("@")[0].split("-")[1:]
        clock = Clock()
        feats = {s: pair_features(scorer, caches[pooling], ids[s], sets[s]) for s in ("train", "ID", "OOD")}
        fitted = fit_and_evaluate(feats["train"], sets["val_idx"], {s: feats[s] for s in ("ID", "OOD")},
                                  head, use_margin, args.seed)
        fit_cost = clock.read()
        scratch = scratch_cost(group)
        cost = {"head_cpu_s": fit_cost["cpu_s"], "head_wall_s": fit_cost["wall_s"], "features": scratch,
                "cpu_s": round((scratch["cpu_s"] or 0) + fit_cost["cpu_s"], 1),
                "wall_s": round((scratch["wall_s"] or 0) + fit_cost["wall_s"], 1)}
        out = {"group": f"{model_name}@{length}", "kind": "frozen", "model": model_name, "pooling": pooling,
               "head": head, "max_length": length, "margin": use_margin, "train": sets["used"]["train"],
               "choice": fitted["choice"], "grid": fitted["grid"], "cost": cost, "extraction": group}
        for s in ("ID", "OOD"):
            out[s] = score_outcomes(s, sets[s], fitted["outcomes"][s], args.seed)
        save_row(runs, names[row], out)
        log.info("%s: ID %.3f, OOD %.3f (val %.3f, %s)", names[row], out["ID"]["accuracy"], out["OOD"]["accuracy"],
                 fitted["choice"]["val_accuracy"], fitted["choice"])


def run_margin(args, sets: dict, runs: Path) -> None:
    """The frozen row with the best validation accuracy, trained again with ``bt_margin``'s loss."""
    rows = [json.loads(p.read_text()) | {"name": p.stem} for p in sorted((runs / "rows").glob("*.json"))]
    frozen = [r for r in rows if r["kind"] == "frozen" and not r["margin"]]
    if not frozen:
        log.info("margin: no frozen row finished yet, skipped")
        return
    best = max(frozen, key=lambda r: r["choice"]["val_accuracy"])
    run_frozen(args, sets, runs, best["model"], best["max_length"], only=[best["name"]], use_margin=True)


def run_lora(args, sets: dict, runs: Path, blocks: str, length: int) -> None:
    """LoRA on the last ``blocks`` blocks of SmolLM2 through ``rewardlab train`` (variant bt); its own
    final evaluation on the first ``--lora-eval-pairs`` of the ID and OOD sets gives the outcomes."""
    from rewardlab.config import load_recipe
    from rewardlab.data.bon_pairs import take_pairs
    from rewardlab.eval.study import load_outcomes
    from rewardlab.train.run import train_reward_model

    name = f"lora{blocks}@{length}"
    if done(runs, name):
        return
    out = runs / "models" / name
    overrides = [f"model.path={args.smollm2}", f"model.lora_r={args.lora_r}",
                 f"model.train_layers={0 if blocks == 'all' else blocks}", f"data.bon_pairs={args.bon}",
                 f"data.bon_min_gap={args.min_gap}", f"data.bon_split_seed={args.split_seed}",
                 f"data.train_limit={args.lora_train_pairs}", f"data.eval_size={args.lora_eval_pairs}",
                 f"data.max_length={length}", "variant.name=bt", f"train.epochs={args.lora_epochs}",
                 f"train.batch_size={args.batch_size}", f"train.lr={args.lora_lr}", f"train.dtype={args.dtype}",
                 f"train.seed={args.seed}", "train.logging_steps=5", f"output_dir={out}"]
    clock = Clock()
    metrics = train_reward_model(load_recipe(None, overrides))
    cost = clock.read()
    built = sets["built"]
    trained, n_inst = take_pairs(built.train, args.lora_train_pairs or None)
    row = {"group": name, "kind": "lora", "blocks": blocks, "max_length": length, "overrides": overrides,
           "train": {"pairs": len(trained), "instructions": n_inst}, "dtype": metrics["train"].get("dtype"),
           "cost": cost}
    by_id = {p.id: p for p in [*built.heldout, *built.ood]}
    for split, file in (("ID", "eval.json"), ("OOD", "eval_ood.json")):
        got = load_outcomes(out / file)
        pairs = [by_id[i] for i in got]
        row[split] = score_outcomes(split, pairs, np.array([got[p.id] for p in pairs]), args.seed)
    save_row(runs, name, row)
    log.info("%s: ID %.3f, OOD %.3f, %s", name, row["ID"]["accuracy"], row["OOD"]["accuracy"], cost)


def run_group(args, sets: dict, runs: Path, group: str) -> None:
    if group == "baselines":
        return run_baselines(args, sets, runs)
    if group == "margin":
        return run_margin(args, sets, runs)
    what, length = group.split("@")
    if what.startswith("lora"):
        return run_lora(args, sets, runs, what.removeprefix("lora"), int(length))
    return run_frozen(args, sets, runs, what, int(length))


def main(argv=None) -> int:
    args = parse_args(argv)
    from rewardlab.eval.study import start_study

    runs = start_study(args, (args.bon,), args.runs, ignore=("runs", "out", "groups"))
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if not GROUP_PATTERN.fullmatch(g)]
    if unknown:
        sys.exit(f"--groups: unknown {unknown}; known: {', '.join(GROUPS)} (any length after @)")
    sets = build_sets(args)
    log.info("pairs used: %s", sets["used"])
    for g in groups:
        log.info("=== group %s", g)
        run_group(args, sets, runs, g)
        write_report(args, sets, runs, argv)
    write_report(args, sets, runs, argv)
    return 0


def write_report(args, sets: dict, runs: Path, argv) -> None:
    from report import write

    extra = [g for g in args.groups.split(",") if g.strip() and g.strip() not in GROUPS]
    write(args, sets, runs, argv, GROUPS + [g.strip() for g in extra])


if __name__ == "__main__":
    sys.exit(main())
