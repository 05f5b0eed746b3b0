"""``rewardlab sample --policy DIR --prompts PATH --n N [--out FILE.jsonl]``: candidates for ``bon``."""

from __future__ import annotations

from rewardlab.choices import DTYPES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="sample N candidate responses per prompt from a policy (input for rewardlab bon)",
        description="Sample --n responses per prompt with transformers generate (vLLM with --backend vllm on a "
        "GPU machine) and write best-of-n records {id, prompt, responses, gold: [null...]}.",
    )
    p.add_argument("--policy", required=True, help="causal LM directory, hub id or 'smollm2' (embedded)")
    p.add_argument("--prompts", required=True,
                   help="JSON lines with 'prompt' (string or messages) or 'instruction', optional 'id'")
    p.add_argument("--n", type=int, default=8, help="candidates per prompt")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (transformers backend)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per response at most")
    p.add_argument("--limit", type=int, default=None, help="use at most this many prompts")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per generate call (each with --n samples)")
    p.add_argument("--backend", default="transformers", choices=["auto", "transformers", "vllm"],
                   help="generation backend; auto = vLLM when installed with a GPU, else transformers")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="policy precision")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow pickle weights / remote code in the policy (runs its code: unsafe)")
    p.add_argument("--out", default="candidates.jsonl", help="output JSON lines")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.bon.sample import load_prompts, sample_candidates, write_records
    from rewardlab.config import ConfigError

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    from rewardlab.cli.common import vet_model

    vet_model(args.policy, args.trust_checkpoint, "--policy")  # before any prompt is read or weight loaded
    prompts = load_prompts(args.prompts, args.limit)
    try:
        records = sample_candidates(args.policy, prompts, args.n, temperature=args.temperature, top_p=args.top_p,
                                    max_new_tokens=args.max_new_tokens, seed=args.seed, backend=args.backend,
                                    batch_size=args.batch_size, dtype=args.dtype, trust=args.trust_checkpoint)
    except ValueError as e:
        raise ConfigError(f"sample: {e}") from None
    out = write_records(records, args.out)
    print(f"{len(records)} prompts x {args.n} candidates: {out}")
    return 0
