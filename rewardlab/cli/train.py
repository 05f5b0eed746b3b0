"""``rewardlab train RECIPE.yaml [section.key=value ...]``."""

from __future__ import annotations

import argparse

from rewardlab.recipe_help import recipe_help


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a reward model from a YAML recipe",
        description="Train a reward model. Writes OUTPUT_DIR/final/ (the model, HF format), "
        "OUTPUT_DIR/metrics.json and, with held-out pairs, OUTPUT_DIR/eval.json.",
        epilog="recipe keys (set in the YAML or as section.key=value):\n" + recipe_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="YAML recipe file")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override recipe keys")
    p.set_defaults(run=run)


def run(args) -> int:
    import time

    from rewardlab.config import load_recipe

    start = time.perf_counter()

    recipe = load_recipe(args.recipe, args.overrides)  # before the slow imports: a bad recipe fails fast
    from rewardlab.train.run import train_reward_model

    metrics = train_reward_model(recipe)
    if not _is_main_process():  # under accelerate launch / torchrun, process 0 reports
        return 0
    tr = metrics["train"]
    if tr.get("dtype_auto"):
        from rewardlab.precision import AutoChoice

        print(AutoChoice(**tr["dtype_auto"]).describe())
    print(
        f"trained {metrics['variant']} on {tr['pairs']} pairs in {tr['steps']} steps "
        f"({metrics['train_seconds']:.0f} s, {tr.get('dtype', 'float32')}), mean training loss {tr['loss']:.4f}"
    )
    if "eval" in metrics:
        e = metrics["eval"]
        lo, hi = e["ci95"]
        print(
            f"held-out accuracy: {e['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {e['n']} pairs"
            + (f" from {e['prompts']} prompts (resampled by prompt)" if e.get("prompts", e["n"]) < e["n"] else "")
            + f", {e['ties']} ties"
        )
        print(length_line(e.get("length")))
    print(f"wall time: {time.perf_counter() - start:.0f} s (loading, training and the final evaluation)")
    print(f"model:   {metrics['final_model']}")
    print(f"metrics: {metrics['output_dir']}/metrics.json")
    return 0


def length_line(length: dict | None) -> str:
    """One line: length alone on the same pairs, and the model against the better length rule."""
    if not length or "vs_best" not in length:
        return "length baseline: no pairs"
    vs = length["vs_best"]
    lo, hi = vs["ci95"]
    rule = vs["baseline"].replace("_", " ")
    return (f"length alone on the same pairs: prefer longer {length['prefer_longer']:.3f}, prefer shorter "
            f"{length['prefer_shorter']:.3f}; model - {rule}: {vs['difference']:+.3f} "
            f"(95% CI {lo:+.3f} to {hi:+.3f}); length-controlled accuracy "
            + (f"{length['length_controlled_accuracy']:.3f}" if length["length_controlled_accuracy"] is not None
               else "n/a"))


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
