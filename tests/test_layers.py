"""No import runs from a lower layer of the package to a higher one.

The layer order is written once, in ARCHITECTURE.md ("Layers", a ```layers block: one layer a
line, top first, each a list of the package's top-level modules); every ``import`` in every
module of the package, also one inside a function, is checked against it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "audionets"


def read_layers(architecture: str) -> dict[str, int]:
    """``{top-level module: layer}`` from the ```layers block (0 = the lowest layer)."""
    block = re.search(r"```layers\n(.*?)```", architecture, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    lines = [line.split() for line in block.group(1).splitlines() if line.strip()]
    layers: dict[str, int] = {}
    for level, names in enumerate(reversed(lines)):
        for name in names:
            assert name not in layers, f"{name} is in two layers"
            layers[name] = level
    return layers


def _module_name(path: Path, package_dir: Path) -> list[str]:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _top(parts: list[str]) -> str:
    """The top-level module ``audionets.<top>...`` names (``__init__``: the package itself)."""
    return parts[1] if len(parts) > 1 else "__init__"


def _targets(node: ast.AST, importer: list[str], is_package: bool,
             package_dir: Path) -> list[list[str]]:
    """The package modules an import statement imports (as name parts), if any."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".") for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: from the importer's package, up level - 1 packages
        base = importer if is_package else importer[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = base + (node.module.split(".") if node.module else [])
    else:
        module = (node.module or "").split(".")
    targets = []
    for alias in node.names:  # "from audionets import hub" imports the module audionets.hub
        sub = package_dir.parent.joinpath(*module, alias.name)
        is_module = sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()
        targets.append(module + [alias.name] if is_module else module)
    return targets


def file_imports(path: Path, package_dir: Path) -> Iterator[tuple[int, tuple[str, ...]]]:
    """``(line, imported module)`` for every import of a module of the package in the file
    ``path``, once per module a line names (also imports inside functions)."""
    importer = _module_name(path, package_dir)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        targets = _targets(node, importer, path.name == "__init__.py", package_dir)
        for target in dict.fromkeys(map(tuple, targets)):
            if target[0] == package_dir.name:
                yield node.lineno, target


def layer_violations(package_dir: Path, layers: dict[str, int]) -> list[str]:
    """``file:line: a imports b (a higher layer)`` for every upward import, and a line for each
    top-level module the layer list lacks."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        top = _top(_module_name(path, package_dir))
        where = path.relative_to(package_dir.parent)
        if top not in layers:
            found.append(f"{where}: {top} is in no layer; add it to the ```layers block")
            continue
        for line, target in file_imports(path, package_dir):
            imported = _top(list(target))
            if imported in layers and layers[imported] > layers[top]:
                found.append(f"{where}:{line}: {top} imports {'.'.join(target)} "
                             f"(layer {imported} is above {top})")
    return found


def import_cycles(package_dir: Path) -> list[str]:
    """``a <-> b`` for each pair of top-level modules that import each other. The layer order
    cannot see such a cycle when both modules sit in one layer (or when the order is rewritten
    to suit the imports); this check needs no order."""
    imports: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        top = _top(_module_name(path, package_dir))
        imports.setdefault(top, set()).update(
            _top(list(target)) for _, target in file_imports(path, package_dir))
    return [f"{a} <-> {b}" for a in sorted(imports) for b in sorted(imports[a])
            if a < b and a in imports.get(b, ())]


def test_no_module_imports_a_higher_layer():
    layers = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert layer_violations(ROOT / PACKAGE, layers) == []


def test_every_layer_name_is_a_module_of_the_package():
    layers = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    package = ROOT / PACKAGE
    for name in layers:
        assert (name == "__init__" or (package / f"{name}.py").is_file()
                or (package / name / "__init__.py").is_file()), name


def test_the_check_finds_upward_and_unlisted_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from audionets.low import thing\n")
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "thing.py").write_text(
        "def f():\n"
        "    from audionets import high\n"  # inside a function still counts
        "    from .. import high as again\n"  # relative, too
        "    import audionets.high.deep\n"
        "from audionets import low\n")  # its own layer: fine
    (package / "stray.py").write_text("")
    layers = read_layers("```layers\n__init__ high\nlow\n```")
    found = layer_violations(package, layers)
    assert [line.split(": ", 1)[0] for line in found] == [
        "audionets/low/thing.py:2", "audionets/low/thing.py:3", "audionets/low/thing.py:4",
        "audionets/stray.py"]
    assert "low imports audionets.high (layer high is above low)" in found[0]


def test_no_two_top_level_modules_import_each_other():
    assert import_cycles(ROOT / PACKAGE) == []


def test_serialization_is_below_the_hub_and_the_hub_below_training():
    """The order issue 16 settled: what audionets writes and reads back (serialization) is
    below both the trainer and the hub, and the hub (where a model comes from: any source,
    shipped names and hub ids included) below training, whose ``init_from`` takes any source
    the hub reads. So the trainer may import the hub, never the hub the trainer."""
    layers = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert layers["serialization"] < layers["hub"] < layers["training"]
    assert layers["hub"] < layers["inference"] and layers["hub"] < layers["export"]


def test_the_checks_catch_a_training_hub_cycle(tmp_path):
    """With the package's own order, a hub that imports the trainer (the cycle issue 16
    removed) and serialization importing the hub are both reported; the trainer importing the
    hub (``init_from``) is not."""
    package = tmp_path / PACKAGE
    for folder in ("training", "serialization"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "training" / "trainer.py").write_text("from audionets.hub import load_model\n")
    (package / "hub.py").write_text(
        "from audionets.serialization import checkpoints\n"
        "def load_model():\n"
        "    from audionets.training.trainer import Checkpoint\n")
    (package / "serialization" / "checkpoints.py").write_text("import audionets.hub\n")
    layers = read_layers((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    found = layer_violations(package, layers)
    assert [line.split(" (")[0] for line in found] == [
        "audionets/hub.py:3: hub imports audionets.training.trainer",
        "audionets/serialization/checkpoints.py:1: serialization imports audionets.hub"]
    assert import_cycles(package) == ["hub <-> serialization", "hub <-> training"]
