"""``rewardlab dtype [--device D] [--refresh]``: what ``dtype: auto`` means on this machine, and why."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dtype",
        help="show what dtype 'auto' picks on a device and the measurement behind it",
        description="Resolve 'auto' for a device as train, eval, score and serve do: time bfloat16 and float32 "
        "matmuls there (about a second, once per machine; the answer is cached), pick bfloat16 only where it "
        "is clearly faster, and print the measurement.",
    )
    p.add_argument("--device", default="auto",
                   help="auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N")
    p.add_argument("--refresh", action="store_true", help="measure again and replace the cached answer")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab.config import ConfigError
    from rewardlab.models.scorer import resolve_device
    from rewardlab.precision import auto_choice

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise ConfigError(f"--device: {e}") from None
    print(auto_choice(device, refresh=args.refresh).describe())
    return 0
