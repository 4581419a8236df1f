"""Import a recipe's script (``recipes/<recipe>/<name>.py``, not a package) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load(recipe: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"recipe_{recipe}_{name}",
                                                  RECIPES / recipe / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
