"""Extensions named at run time: ``REWARDLAB_PLUGINS`` lists modules (``my_pkg.my_kind``) or Python files
(``path/to/my_kind.py``), comma-separated, imported once before a recipe is read or a model is loaded.
A plugin registers what it adds (a reward-model kind, a variant) when it is imported."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

ENV = "REWARDLAB_PLUGINS"
_loaded: set[str] = set()


def load_plugins(spec: str | None = None) -> list[str]:
    """Import every plugin of ``spec`` (default: ``$REWARDLAB_PLUGINS``) not imported yet; returns them."""
    spec = os.environ.get(ENV, "") if spec is None else spec
    done = []
    for item in (x.strip() for x in spec.split(",")):
        if not item or item in _loaded:
            continue
        if item.endswith(".py"):
            path = Path(item)
            if not path.is_file():
                raise ImportError(f"{ENV}: {item}: no such file")
            name = f"rewardlab_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(item)
        _loaded.add(item)
        done.append(item)
    return done
