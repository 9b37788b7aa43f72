"""The shape of the harness's code, kept: no import cycle in `oracles/` (function-level imports
counted), no module past 400 lines, and finding kinds read through their registry."""

from __future__ import annotations

import ast
from pathlib import Path

from oracles.kinds import RULES, Kind
from tools.code_metrics import cycles, imports, modules

ORACLES = Path(__file__).resolve().parents[1] / "oracles"
MAX_MODULE_LINES = 400


def test_the_harness_has_no_import_cycle_even_through_function_level_imports():
    assert cycles(imports(modules(ORACLES))) == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def late():\n    from . import a\n")
    assert cycles(imports(modules(package))) == [["pkg.a", "pkg.b"]]


def test_no_module_of_the_harness_passes_400_lines():
    long = {name: n for name, path in modules(ORACLES).items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_every_kind_has_its_rule():
    assert set(RULES) == set(Kind)


def test_no_module_compares_a_finding_kind_with_its_spelling():
    """A kind's properties live in kinds.py; `finding.kind == "crash"` would bypass them."""
    spellings = {kind.value for kind in Kind}
    offenders = []
    for name, path in modules(ORACLES).items():
        if name == "oracles.kinds":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                kind_side = any(isinstance(s, ast.Attribute) and s.attr in ("kind", "verdict") for s in sides)
                constants = [c for s in sides for c in (s.elts if isinstance(s, ast.Tuple | ast.Set) else [s])]
                spelled = [c.value for c in constants if isinstance(c, ast.Constant) and c.value in spellings]
                if kind_side and spelled:
                    offenders.append(f"{name}:{node.lineno} compares with {spelled[0]!r}")
    assert offenders == []
