"""The package layout: imports go one way (core -> nn -> geometry, eval -> variants -> data, viz ->
training -> cli), the core does no file I/O, and no module is over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "inr_gon"
# layer of each top-level part; a module may import its own part and any part of a lower layer
LAYERS = {"core": 0, "nn": 1, "geometry": 2, "eval": 2, "variants": 3, "data": 4, "viz": 4, "training": 5, "cli": 6}
PURE = ("core", "nn", "geometry", "eval", "variants")
MODULES = sorted(p for p in PKG.rglob("*.py") if p.name != "_compat.py" and p.parent != PKG or p.stem in LAYERS)


def part_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path):
    """``(part, line)`` of every inr_gon part the module imports (relative or absolute)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PKG).parts) - 1  # folders below inr_gon/
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                base = list(path.relative_to(PKG).parts[:depth])[: max(depth - up, 0)] if up <= depth else None
                if base is None:
                    continue
                target = base + (node.module.split(".") if node.module else [])
                names = [target[0]] if target else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "inr_gon":
                rest = node.module.split(".")[1:]
                names = [rest[0]] if rest else [a.name for a in node.names]
            else:
                continue
            for n in names:
                yield n, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "inr_gon" and len(parts) > 1:
                    yield parts[1], node.lineno


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_one_way(path):
    me = part_of(path)
    for part, line in imported_parts(path):
        if part not in LAYERS or part == me:
            continue
        assert LAYERS[part] < LAYERS[me], f"{path.relative_to(PKG)}:{line} imports {part} (a layer above {me})"


@pytest.mark.parametrize("path", [p for p in MODULES if part_of(p) in PURE], ids=lambda p: str(p.relative_to(PKG)))
def test_the_pure_layers_do_no_file_io(path):
    text = path.read_text()
    for banned in (
        "open(",
        ".write_text(",
        ".write_bytes(",
        ".read_text(",
        "torch.save(",
        "torch.load(",
        "savefig(",
        ".export(",
    ):
        assert banned not in text, f"{path.relative_to(PKG)} uses {banned}"


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_the_check_catches_a_wrong_import(tmp_path):
    """Control: an import from a higher layer is found."""
    bad = PKG / "core" / "_probe_tmp.py"
    bad.write_text("from ..training import trainer\n")
    try:
        assert ("training", 1) in list(imported_parts(bad))
    finally:
        bad.unlink()
