"""``rewardlab star RECIPE.yaml [section.key=value ...]``: the STaR loop for a CoT-GenRM."""

from __future__ import annotations

import argparse

from rewardlab.recipe_help import recipe_help


def add_parser(sub) -> None:
    p = sub.add_parser(
        "star",
        help="train a CoT-GenRM judge on its own rationales (STaR, rationalizer, STaR-DPO)",
        description="For variant.iterations iterations: sample variant.k rationales per training pair and "
        "order, keep those whose verdict matches the label (star_rationalizer: add hinted rationales for "
        "inputs with none), train (SFT, or DPO on correct/wrong pairs for star_dpo). Writes "
        "OUTPUT_DIR/final/ (a judge: rewardlab eval --model OUTPUT_DIR/final), OUTPUT_DIR/star.jsonl "
        "(one line per iteration: yield, vote accuracy, loss, held-out accuracy) and OUTPUT_DIR/metrics.json.",
        epilog="recipe keys (set in the YAML or as section.key=value):\n" + recipe_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="YAML recipe file (variant.name: star_sft, star_rationalizer or star_dpo)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override recipe keys")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.config import ConfigError, load_recipe
    from rewardlab.variants import VARIANTS

    recipe = load_recipe(args.recipe, args.overrides)
    if not VARIANTS.get(recipe.variant.name).self_improving:
        raise ConfigError(f"variant.name={recipe.variant.name!r} is not a STaR variant; use star_sft, "
                          "star_rationalizer or star_dpo")
    from rewardlab.train.star import run_star

    metrics = run_star(recipe)
    for it in metrics["iterations"]:
        line = (f"iteration {it['iteration']}: yield {it['yield']:.3f} ({it['correct']}/{it['samples']} samples), "
                f"vote accuracy {it['vote_accuracy']:.3f}, {it['rationalized']} rationalized, "
                f"{it['train_examples']} training examples, {it['steps']} steps")
        if "eval_accuracy" in it:
            line += f", held-out accuracy {it['eval_accuracy']:.3f}"
        print(line)
    print(f"model:   {metrics['final_model']}")
    print(f"log:     {metrics['output_dir']}/star.jsonl")
    print(f"metrics: {metrics['output_dir']}/metrics.json")
    return 0
