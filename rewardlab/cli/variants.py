"""``rewardlab variants``: list registered reward-model variants, their options and capabilities."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("variants", help="list reward-model variants and their options")
    p.set_defaults(run=run)


def run(args) -> int:
    import dataclasses

    from rewardlab.fielddocs import field_docs
    from rewardlab.variants import VARIANTS

    for name in VARIANTS.names():
        cls = VARIANTS.get(name)
        caps = [c for c in cls.CAPABILITIES if getattr(cls, c)]
        print(f"{name} (kind {cls.kind}): {cls.description}" + (f"  [{', '.join(caps)}]" if caps else ""))
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            print(f"    variant.{f.name} (default {f.default!r}): {docs.get(f.name, '')}")
    return 0
