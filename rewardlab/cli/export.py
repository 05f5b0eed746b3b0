"""``rewardlab export --model DIR --out DIR2``: a reward model as a plain stock classifier checkpoint."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a reward model as a plain sequence-classification model that stock transformers loads",
        description="Write a scalar reward model (a full checkpoint, a LoRA adapter, merged on the way, or "
        "a GRM, whose LM head is dropped) as AutoModelForSequenceClassification weights (num_labels=1) "
        "that stock transformers, pipeline() and TRL load with the same scores. A kind with no such form "
        "(an MLP head, an ensemble, a generative judge) is refused with the reason.",
    )
    p.add_argument("--model", required=True, help="trained reward model directory (full, LoRA adapter or GRM)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow pickle weights / remote code in the checkpoint (runs its code: unsafe)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.cli.common import vet_model
    from rewardlab.models.export import export_reward_model

    vet_model(args.model, args.trust_checkpoint)
    out = export_reward_model(args.model, args.out, trust=args.trust_checkpoint)
    print(f"exported reward model: {out}")
    return 0
