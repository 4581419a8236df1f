"""No import runs from a lower layer of the package to a higher one.

The layer order is written once, in ARCHITECTURE.md ("Layers", a ```layers block: one layer a
line, top first, each a list of the package's top-level modules); every ``import`` in every
module of the package, also one inside a function, is checked against it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

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


def layer_violations(package_dir: Path, layers: dict[str, int]) -> list[str]:
    """``file:line: a imports b (a higher layer)`` for every upward import, and a line for each
    top-level module the layer list lacks."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        importer = _module_name(path, package_dir)
        top = _top(importer)
        where = path.relative_to(package_dir.parent)
        if top not in layers:
            found.append(f"{where}: {top} is in no layer; add it to the ```layers block")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets = _targets(node, importer, path.name == "__init__.py", package_dir)
            for target in dict.fromkeys(map(tuple, targets)):  # once per module a line names
                if target[0] != package_dir.name:
                    continue
                imported = _top(list(target))
                if imported in layers and layers[imported] > layers[top]:
                    found.append(f"{where}:{node.lineno}: {top} imports {'.'.join(target)} "
                                 f"(layer {imported} is above {top})")
    return found


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
