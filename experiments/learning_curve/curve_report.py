"""README.md, results.json and curve.png of the learning curves, from the result ``run.py`` computed."""

from __future__ import annotations

import shlex
from pathlib import Path

from rewardlab import jsonout
from rewardlab.precision import cpu_name


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def interval(x: float, ci) -> str:
    return f"{pct(x)} [{pct(ci[0])}, {pct(ci[1])}]"


def signed(x: float, ci) -> str:
    mark = " ✓" if ci[0] > 0 else (" ✗" if ci[1] < 0 else "")
    return f"{100 * x:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]{mark}"


def alpaca_table(curve: dict) -> str:
    lines = ["| training pairs | instructions | ID acc [95% CI] | prefer-longer | ID − longer [CI] | ID len-ctrl "
             "| OOD acc [95% CI] | prefer-longer | OOD − longer [CI] | head CPU-s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, p in curve["points"].items():
        i, o = p["ID"], p["OOD"]
        lines.append(f"| {n} | {p['train']['instructions']} | {interval(i['accuracy'], i['ci95'])} | {pct(i['baseline'])} "
                     f"| {signed(i['difference'], i['difference_ci95'])} | {pct(i['length_controlled'])} "
                     f"| {interval(o['accuracy'], o['ci95'])} | {pct(o['baseline'])} "
                     f"| {signed(o['difference'], o['difference_ci95'])} | {p['cost']['cpu_s']:.0f} |")
    return "\n".join(lines)


def hh_table(curve: dict) -> str:
    lines = ["| training pairs | acc [95% CI] | prefer-shorter [95% CI] | acc − shorter [CI] | len-ctrl | head CPU-s |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n, p in curve["points"].items():
        i = p["ID"]
        lines.append(f"| {n} | {interval(i['accuracy'], i['ci95'])} | {interval(i['baseline'], i['baseline_ci95'])} "
                     f"| {signed(i['difference'], i['difference_ci95'])} | {pct(i['length_controlled'])} "
                     f"| {p['cost']['cpu_s']:.0f} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("AlpacaEval ID", result["alpacaeval"], "ID", "C0"), ("AlpacaEval OOD", result["alpacaeval"], "OOD", "C1")]
    if result["hh"]:
        series.append(("HH-RLHF", result["hh"], "ID", "C2"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, curve, split, color in series:
        ns = [int(n) for n in curve["points"]]
        pts = [curve["points"][n][split] for n in curve["points"]]
        acc = [100 * p["accuracy"] for p in pts]
        ax.plot(ns, acc, "o-", color=color, label=f"{label}: model")
        ax.fill_between(ns, [100 * p["ci95"][0] for p in pts], [100 * p["ci95"][1] for p in pts], color=color, alpha=0.15)
        ax.plot(ns, [100 * p["baseline"] for p in pts], "--", color=color, label=f"{label}: length rule")
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training pairs")
    ax.set_ylabel("held-out accuracy, % (band: 95% CI)")
    ax.set_title("Frozen SmolLM2 features + BT head: accuracy vs training pairs")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def standing(result: dict) -> list[str]:
    """What the curves show, read off the numbers (no claim a number does not carry)."""
    out = []
    a = result["alpacaeval"]["points"]
    last_n = list(a)[-1]
    for split in ("ID", "OOD"):
        p = a[last_n][split]
        above = p["ci95"][0] > 0.5
        beats = p["difference_ci95"][0] > 0
        out.append(f"- AlpacaEval {split}, {last_n} training pairs: {interval(p['accuracy'], p['ci95'])}; the interval "
                   f"{'lies above' if above else 'does not clear'} 50%, and the paired difference against "
                   f"prefer-longer ({pct(p['baseline'])}) is {signed(p['difference'], p['difference_ci95'])}: "
                   + ("the head beats length." if beats else "not a demonstrated win over length."))
    first_n = list(a)[0]
    gain = a[last_n]["ID"]["accuracy"] - a[first_n]["ID"]["accuracy"]
    out.append(f"- From {first_n} to {last_n} pairs the ID accuracy moves by {100 * gain:+.1f} points "
               f"({a[first_n]['train']['instructions']} to {a[last_n]['train']['instructions']} instructions).")
    if result["hh"]:
        h = result["hh"]["points"]
        n = list(h)[-1]
        p = h[n]["ID"]
        out.append(f"- HH-RLHF, {n} pairs: {interval(p['accuracy'], p['ci95'])} against prefer-shorter "
                   f"{pct(p['baseline'])} (difference {signed(p['difference'], p['difference_ci95'])}).")
    return out


def write(result: dict, out: Path) -> None:
    args = result["args"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(jsonout.dumps(result, indent=2) + "\n")
    plot(result, out / "curve.png")
    a, h = result["alpacaeval"], result["hh"]
    cmd = "python experiments/learning_curve/run.py" + "".join(" " + shlex.quote(x) for x in result["argv"])
    fa = a["features"]
    text = [
        "# Learning curves: held-out accuracy against training pairs",
        "",
        "Written by `experiments/learning_curve/run.py`; every number below is in `results.json` beside this file.",
        "",
        "```bash", cmd, "```", "",
        f"CPU: {cpu_name()}; features in {result['dtype']}. The backbone pass (every text once, through "
        f"`rewardlab.models.feature_cache`) took {fa['cpu_s'] / 60:.1f} CPU-min / {fa['wall_s'] / 60:.1f} wall-min "
        f"for AlpacaEval ({fa['texts']} texts, {fa['tokens']} tokens, {fa['computed']} of them computed in this run, "
        "the rest already cached)"
        + (f" and {h['features']['cpu_s'] / 60:.1f} CPU-min / {h['features']['wall_s'] / 60:.1f} wall-min for "
           f"HH-RLHF ({h['features']['texts']} texts, {h['features']['computed']} computed)" if h else "")
        + "; each point's head then costs the CPU seconds in its row.",
        "",
        "## Set-up",
        "",
        f"- **Model**: frozen `{args['model']}` (its first {args['num_layers'] or 'all'} blocks), features `{args['pooling']}`-pooled over "
        f"{args['max_length']} tokens, a `{args['head']}` head trained with rewardlab's Bradley-Terry loss on "
        "standardised features (`experiments/rm_table/heads.py`: learning rate, weight decay and epochs chosen "
        f"on the last {pct(args['val_fraction'])}% of each training set's instructions, then refitted on all of it).",
        f"- **AlpacaEval**: `rewardlab.data.bon_pairs` (gold gap >= {args['min_gap']}; split seed {args['split_seed']}). "
        "Training sets are the first N pairs of the training split, whole instructions in split order, so each "
        f"holds the smaller ones. ID: every pair of {a['eval']['ID']['instructions']} held-out instructions "
        f"({a['eval']['ID']['pairs']} pairs); OOD (koala, vicuna): every pair of {a['eval']['OOD']['instructions']} "
        f"instructions ({a['eval']['OOD']['pairs']} pairs). Intervals: 95% cluster bootstrap over instructions; "
        "the difference against \"prefer the longer answer\" is paired (same resampled instructions). Only "
        f"{a['stats']['instructions_with_pairs']['train']} training instructions have a pair, so the largest "
        "point rests on that many prompts.",
    ]
    if h:
        text.append(f"- **HH-RLHF** harmless: {h['data']['kept']} usable pairs ({sum(h['data']['dropped'].values())} dropped and "
                    f"counted by the lenient reader); {args['hh_eval']} held out (seed {args['seed']}), training sets "
                    f"the first N of the other {h['pool']}. Each pair has its own prompt, so intervals resample pairs. "
                    "The baseline is \"prefer the shorter answer\", the better length rule there.")
    text += ["", "## AlpacaEval", "", alpaca_table(a), "",
             "✓ / ✗: the paired interval against prefer-longer lies above / below 0.", ""]
    if h:
        text += ["## HH-RLHF", "", hh_table(h), ""]
    text += ["![learning curves](curve.png)", "", "## Where this stands", "", *standing(result), ""]
    (out / "README.md").write_text("\n".join(text))
