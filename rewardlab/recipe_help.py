"""Every recipe key with its default and documentation, for ``rewardlab train --help`` and ``star --help``."""

from __future__ import annotations

import dataclasses
from typing import Any

from rewardlab.config import SECTIONS, Recipe, VariantConfig
from rewardlab.fielddocs import field_docs


def _variant_option_help() -> list[str]:
    """One line per variant option: the variants that take it, its default and its documentation."""
    from rewardlab.variants import VARIANTS

    owners: dict[str, list[str]] = {}
    info: dict[str, tuple[Any, str]] = {}
    for vname in VARIANTS:
        cls = VARIANTS.get(vname)
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            owners.setdefault(f.name, []).append(vname)
            info.setdefault(f.name, (f.default, docs.get(f.name, "")))
    return [f"  variant.{opt} ({', '.join(owners[opt])}; default {info[opt][0]!r}): {info[opt][1]}"
            for opt in sorted(owners)]


def recipe_help() -> str:
    """Every recipe key with its default and documentation, for ``--help``."""
    lines = []
    for section, cls in SECTIONS.items():
        docs, defaults = field_docs(cls), cls()
        for f in dataclasses.fields(cls):
            lines.append(f"  {section}.{f.name} (default {getattr(defaults, f.name)!r}): {docs.get(f.name, '')}")
    vdocs = field_docs(VariantConfig)
    lines.append(f"  variant.name (default 'bt'): {vdocs['name']}")
    lines.append(f"  variant.<option>: {vdocs['options']}")
    lines += _variant_option_help()
    lines.append(f"  output_dir (default {Recipe.output_dir!r}): {field_docs(Recipe)['output_dir']}")
    return "\n".join(lines)
