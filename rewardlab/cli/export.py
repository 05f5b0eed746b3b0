"""``rewardlab export --model DIR --out DIR2``: a GRM's reward half as a plain classifier checkpoint."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a GRM's reward model (backbone + reward head) as a plain sequence-classification model",
        description="Drop the LM head of a GRM checkpoint (full or LoRA, merged on the way) and write "
        "backbone + reward head as AutoModelForSequenceClassification weights (num_labels=1). A linear "
        "head loads with stock transformers and gives the same scores.",
    )
    p.add_argument("--model", required=True, help="trained GRM directory")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickle weights / remote code in the checkpoint (runs its code: unsafe)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.cli.eval import vet_model
    from rewardlab.models.grm import export_reward_model, is_grm_dir

    vet_model(args.model, args.trust_checkpoint)
    if not is_grm_dir(args.model):
        raise FileNotFoundError(f"--model {args.model}: not a GRM checkpoint (config.json says no 'kind: grm')")
    out = export_reward_model(args.model, args.out, trust=args.trust_checkpoint)
    print(f"exported reward model: {out}")
    return 0
