"""Standalone reproducers for upstream: a script per real bug that needs numpy and the engine
only, to paste into the engine's issue tracker.

It is written from the adapter's own module (engines/compose.py gives its layout), read as
source and never imported here: the ops the minimal case uses (each entry of the adapter's `OPS`,
a lambda turned into a function `op_<name>`), the differentiators the case's answers need
(`vjp_of`, `jvp_of`, `hvp_of`), every module-level function or constant they reach, and the
imports those use, all verbatim. So the script runs exactly the engine calls the audit ran.

The script prints the engine's answer beside the expected one (the references', recorded by the
audit on the minimal case), quantity by quantity, and exits 1 when one differs by more than the
audit's error model allows (check/compare.py: |a - b| <= rtol (max(|a|, |b|) + scale), with the
case's scales written in), or when the engine raises, and 0 when the engine is right.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np

from ..check.compare import RTOL, inf_norm
from ..check.modes import _intermediate_tangent_scale, case_tangents
from ..engines import SHORT_NAMES
from ..format import reference_values, validate_case

DIFFERENTIATORS = {"vjp": "vjp_of", "jvp": "jvp_of", "hvp": "hvp_of"}
# The plug-in's own names (not the engine's calls): never copied.
PLUG_IN_NAMES = {"OPS", "ops", "name", "unsupported", "accepts", "evaluate", "jvp", "hvp", "note"}


class NotAnAdapter(ValueError):
    """The engine's module is not written in the layout of engines/compose.py (no OPS, no vjp_of)."""


def adapter_source(engine_spec: str) -> str | None:
    """The source of the engine's adapter module if it has the layout of engines/compose.py (an
    `OPS` dict and a `vjp_of`), else None. The module is found, not imported."""
    module_name = SHORT_NAMES.get(engine_spec, engine_spec).partition(":")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    source = Path(spec.origin).read_text(encoding="utf-8")
    try:
        _Module(source)
    except (NotAnAdapter, SyntaxError):
        return None
    return source


class _Module:
    """An adapter's source, read by statement."""

    def __init__(self, source: str):
        self.source = source
        self.tree = ast.parse(source)
        self.definitions: dict[str, ast.stmt] = {}  # module-level name -> the statement that binds it
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.setup: list[ast.stmt] = []  # module-level calls (a configuration, say): always kept
        self.ops: dict[str, ast.expr] = {}
        for statement in self.tree.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                if not (isinstance(statement, ast.ImportFrom) and (statement.level or _ours(statement.module))):
                    self.imports.append(statement)
            elif isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                self.definitions[statement.name] = statement
            elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.definitions[target.id] = statement
                        if target.id == "OPS" and isinstance(statement.value, ast.Dict):
                            self.ops = {
                                str(key.value): value
                                for key, value in zip(statement.value.keys, statement.value.values)
                                if isinstance(key, ast.Constant)
                            }
            elif isinstance(statement, ast.Expr) and not isinstance(statement.value, ast.Constant):
                self.setup.append(statement)
        if not self.ops or "vjp_of" not in self.definitions:
            raise NotAnAdapter("no OPS dict or no vjp_of: not the layout of oracles/engines/compose.py")

    def segment(self, node: ast.AST) -> str:
        decorators = getattr(node, "decorator_list", None)
        if decorators:  # a function's source segment starts at `def`: its decorators come first
            lines = self.source.splitlines()
            return "\n".join(lines[decorators[0].lineno - 1 : getattr(node, "end_lineno", None)])
        return ast.get_source_segment(self.source, node, padded=False) or ast.unparse(node)

    def op_function(self, op: str) -> tuple[str, str]:
        """(the name a node of `op` calls, the code that defines it)."""
        value = self.ops[op]
        if isinstance(value, ast.Lambda):
            function = f"op_{op}"
            arguments = self.segment(value.args)
            return function, f"def {function}({arguments}):\n    return {self.segment(value.body)}\n"
        if isinstance(value, ast.Name) and value.id in self.definitions:
            return value.id, ""  # a module-level function: copied with the names the script reaches
        return f"op_{op}", f"op_{op} = {self.segment(value)}\n"

    def reached(self, code: str) -> list[ast.stmt]:
        """The module-level definitions `code` uses, and those they use, in the module's order."""
        wanted: set[str] = set()
        pending = _names(ast.parse(code))
        while pending:
            name = pending.pop()
            if name in wanted or name in PLUG_IN_NAMES or name not in self.definitions:
                continue
            wanted.add(name)
            pending |= _names(self.definitions[name])
        chosen = {id(self.definitions[n]) for n in wanted}
        return [s for s in self.tree.body if id(s) in chosen]

    def header(self) -> list[ast.stmt]:
        """The module's statements up to its last import: where the imports and the setup among them are."""
        last_import = max((self.tree.body.index(s) for s in self.imports), default=-1)
        return self.tree.body[: last_import + 1]

    def imports_for(self, names: set[str]) -> list[str]:
        """The module's import statements, cut to the names in `names` (numpy is always there), with
        the setup calls made between them where they are (TensorFlow's logging level, set before its
        import)."""
        lines = ["import numpy as np"]
        for statement in self.header():
            if statement in self.setup:
                lines.append(self.segment(statement))
                continue
            if statement not in self.imports:
                continue
            kept = [a for a in statement.names if (a.asname or a.name).split(".")[0] in names]
            if not kept or (isinstance(statement, ast.Import) and [a.name for a in kept] == ["numpy"]):
                continue
            spelled = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in kept)
            if isinstance(statement, ast.Import):
                lines.append(f"import {spelled}")
            else:
                lines.append(f"from {statement.module} import {spelled}")
        return lines


def _ours(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in {"oracles", "autodiff"}


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _literal(x) -> str:
    """A nested list of numbers as Python source that reads back to the same float64s."""
    if isinstance(x, list):
        return "[" + ", ".join(_literal(e) for e in x) + "]"
    number = float(x)
    return repr(number) if np.isfinite(number) else f"float({str(number)!r})"


def _array(x, dtype: str) -> str:
    return f"np.array({_literal(np.asarray(x, dtype=np.float64).tolist())}, dtype=np.{dtype})"


def _scales(case, expected: dict, t1: dict) -> dict[str, float]:
    """The error model's case-wide scale of each kind of quantity (check/compare.py)."""
    with np.errstate(all="ignore"):
        intermediate = reference_values(case.graph, {n: v.astype(np.float64) for n, v in case.values.items()})
    finite = [inf_norm(np.asarray(v, dtype=np.float64)) for v in intermediate.values()]
    value = max([s for s in finite if np.isfinite(s)], default=0.0)
    gradients = [inf_norm(np.asarray(g, dtype=np.float64)) for g in expected.get("gradients", {}).values()]
    gradient = max([inf_norm(case.cotangent.astype(np.float64)), *gradients])
    jvp = _intermediate_tangent_scale(case.graph, case.values, t1)
    if "jvp" in expected:
        jvp = max(jvp, inf_norm(np.asarray(expected["jvp"], dtype=np.float64)))
    tangent = max([inf_norm(t.astype(np.float64)) for t in t1.values()], default=0.0)
    products = [inf_norm(np.asarray(p, dtype=np.float64)) for p in expected.get("hvp", {}).values()]
    hvp = max([*products, gradient * tangent, inf_norm(case.cotangent.astype(np.float64)) * jvp])
    return {"value": value, "gradient": gradient, "jvp": jvp, "hvp": hvp}


def upstream_source(adapter: str, engine_name: str, minimal: dict, expected: dict, headline: str) -> str:
    """The standalone script for one minimal case: `adapter` is the adapter module's source,
    `expected` the references' answers recorded on the case, `headline` what the audit found."""
    module = _Module(adapter)
    case = validate_case(minimal)
    graph, dtype = case.graph, str(case.dtype)
    modes = [m for m in ("vjp", "jvp", "hvp") if DIFFERENTIATORS[m] in module.definitions]
    # A mode the references gave no answer in (second order at a kink) still runs: its dtype is checked.
    inputs = [entry["name"] for entry in graph["inputs"]]

    functions: dict[str, str] = {}
    calls: list[str] = []
    for node in graph["nodes"]:
        function, definition = module.op_function(node["op"])
        functions.setdefault(function, definition)
        arguments = ", ".join([*node["inputs"], repr(node["attrs"])])
        calls.append(f"    {node['name']} = {function}({arguments})  # {node['op']}")
    graph_code = (
        f'def graph({", ".join(inputs)}):\n    """The minimal case, node by node."""\n'
        + "\n".join(calls)
        + f"\n    return {graph['output']}\n"
    )
    ops_code = "\n\n".join(d for d in functions.values() if d)
    differentiators = [module.segment(module.definitions[DIFFERENTIATORS[m]]) for m in modes]
    used_code = "\n".join([ops_code, graph_code, *differentiators])
    setup_code = "\n".join(module.segment(s) for s in module.setup)
    kept = module.reached(used_code + "\n" + setup_code)  # helpers, and what the setup calls name
    # In the module's order, the setup calls among them: `f.defvjp(f_fwd, f_bwd)` after its functions.
    header = module.header()
    statements = [s for s in module.tree.body if s in kept or (s in module.setup and s not in header)]
    helper_code = "\n\n\n".join(module.segment(s) for s in statements)
    imports = module.imports_for(_names(ast.parse("\n".join([used_code, helper_code, setup_code]))))

    t1 = case_tangents(case, 0)
    scales = _scales(case, expected, t1)
    data = [f"{name} = {_array(case.values[name], dtype)}" for name in inputs]
    data.append(f"cotangent = {_array(case.cotangent, dtype)}  # the VJP is cotangent . d graph / d input")
    if "jvp" in modes or "hvp" in modes:
        data += [f"t_{name} = {_array(t1[name], dtype)}  # the tangent along {name}" for name in inputs]
    answers = [f"EXPECTED_VALUE = {_array(expected['value'], 'float64')}"]
    answers += [f"EXPECTED_GRADIENT_{n} = {_array(expected['gradients'][n], 'float64')}" for n in inputs]
    if "jvp" in modes:
        answers.append(f"EXPECTED_JVP = {_array(expected['jvp'], 'float64') if 'jvp' in expected else None}")
    if "hvp" in modes:
        answers += [
            f"EXPECTED_HVP_{n} = {_array(expected['hvp'][n], 'float64') if 'hvp' in expected else None}" for n in inputs
        ]
    arrays = f"[{', '.join(inputs)}]"
    tangents = f"[{', '.join('t_' + n for n in inputs)}]"
    sections_run = [  # one block per derivative mode: an engine that raises in one still shows the others
        [f"value, gradients = vjp_of(graph, {arrays}, cotangent)",
         'compare("value", value, EXPECTED_VALUE, SCALE["value"])']
        + [f'compare("gradient of {n}", gradients[{i}], EXPECTED_GRADIENT_{n}, SCALE["gradient"])'
           for i, n in enumerate(inputs)],
    ]  # fmt: skip
    if "jvp" in modes:
        sections_run.append([
            f"_, derivative = jvp_of(graph, {arrays}, {tangents})",
            'compare("J t (forward mode)", derivative, EXPECTED_JVP, SCALE["jvp"])',
        ])  # fmt: skip
    if "hvp" in modes:
        sections_run.append(
            [f"products = hvp_of(graph, {arrays}, cotangent, {tangents})"]
            + [f'compare("H t of {n} (second order)", products[{i}], EXPECTED_HVP_{n}, SCALE["hvp"])'
               for i, n in enumerate(inputs)]
        )  # fmt: skip
    titles = {"vjp": "reverse mode (VJP)", "jvp": "forward mode (JVP)", "hvp": "second order (HVP)"}
    run = ["gradients = derivative = None"]
    for mode, lines in zip(modes, sections_run):
        run += ["try:", *(f"    {line}" for line in lines), "except Exception as error:",
                f"    raised({titles[mode]!r}, error)"]  # fmt: skip
    if "jvp" in modes:  # the two modes must be each other's transposes, whatever the references say
        run += ["if gradients is not None and derivative is not None:",
                f"    transpose_identity(cotangent, derivative, gradients, {tangents})"]  # fmt: skip
    body = "\n".join(f"    {line}" for line in run)
    sections = [
        f'"""{headline}\n\n'
        f"Engine: {engine_name}. Found by autodiff-audit and shrunk to this case; it needs only numpy\n"
        f"and the engine. It prints the engine's answers beside the expected ones (computed by\n"
        f"{expected.get('backend', 'the references')} and agreed by the audit's other references), "
        "and exits 1 while the bug is there.\n"
        '"""',
        "\n".join(["import sys", "import traceback", "", *imports]),
        helper_code,
        ops_code,
        graph_code.rstrip("\n"),
        "\n\n\n".join(differentiators),
        "\n".join(data),
        "# The expected answers (float64) and the scales of the audit's error model for this case.\n"
        + "\n".join(answers)
        + f"\nSCALE = {json.dumps({k: float(v) for k, v in scales.items()})}\nRTOL = {RTOL[dtype]!r}  # {dtype}"
        + f"\nDTYPE = np.dtype({dtype!r})  # the case's: the engine must answer in it",
        _COMPARE,
        f"def main():\n{body}\n    return 1 if WRONG else 0",
        'if __name__ == "__main__":\n    sys.exit(main())',
    ]
    return "\n\n\n".join(s for s in sections if s.strip()) + "\n"


_COMPARE = '''WRONG = []


def transpose_identity(v, jt, gradients, tangents):
    """<v, J t> = <J^T v, t>: reverse mode and forward mode are each other's transposes."""
    norm = np.linalg.norm
    v, jt = np.asarray(v, dtype=np.float64), np.asarray(jt, dtype=np.float64)
    pairs = [(np.asarray(g, dtype=np.float64), np.asarray(t, dtype=np.float64)) for g, t in zip(gradients, tangents)]
    forward, reverse = float(np.sum(v * jt)), sum(float(np.sum(g * t)) for g, t in pairs)
    tolerance = RTOL * (norm(v) * (norm(jt) + np.sqrt(jt.size) * SCALE["jvp"])
                        + sum(norm(t) * (norm(g) + np.sqrt(g.size) * SCALE["gradient"]) for g, t in pairs))
    print(f"transpose identity, <v, J t> = <J^T v, t>:\\n  forward {forward!r}\\n  reverse {reverse!r}")
    if not abs(forward - reverse) <= tolerance and not (np.isnan(forward) and np.isnan(reverse)):
        WRONG.append("transpose identity")
        print(f"  WRONG: the two modes differ by {abs(forward - reverse):.3g}, tolerance {tolerance:.3g}")


def raised(mode, error):
    """The engine raised: its traceback is its answer."""
    traceback.print_exc()
    WRONG.append(mode)
    print(f"RAISED in {mode}: {type(error).__name__}: {error}")


def compare(quantity, actual, expected, scale):
    """Print the engine's answer beside the expected one; a difference past the tolerance is wrong."""
    computed_in = np.asarray(actual).dtype
    actual = np.asarray(actual, dtype=np.float64)
    print(f"{quantity}:")
    print(f"  engine:   {np.array2string(actual, precision=17)}")
    if expected is not None:
        print(f"  expected: {np.array2string(expected, precision=17)}")
    if computed_in != DTYPE:  # a float32 case answered in float64: the engine left its float32 path
        WRONG.append(quantity)
        print(f"  WRONG: computed in {computed_in}, the inputs are {DTYPE}")
    if expected is None:
        print("  (no expected answer: the references do not judge this mode here, at a kink)")
        return
    if actual.shape != expected.shape:
        WRONG.append(quantity)
        print(f"  WRONG: shape {list(actual.shape)}, expected {list(expected.shape)}")
        return
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))  # NaN where NaN is expected agrees
    error = float(np.max(np.where(same, 0.0, np.abs(actual - expected)), initial=0.0))
    largest = [float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0)) for x in (actual, expected)]
    tolerance = RTOL * (max(largest) + scale)
    if not np.all(np.isfinite(actual[~same])) and np.all(np.isfinite(expected)):
        WRONG.append(quantity)
        print(f"  WRONG: NaN or Inf where {quantity} is finite")
    elif not error <= tolerance:
        WRONG.append(quantity)
        print(f"  WRONG: differs by {error:.3g}, tolerance {tolerance:.3g}")'''


def upstream_for(minimal, adapter: str, engine_name: str, seed: int) -> str:
    """The script for a report's minimal case (report/model.py MinimalCase)."""
    where = f"op {minimal.op!r}" if minimal.op else "no single op (a composition)"
    headline = (
        f"{engine_name}: {minimal.kind} in {where}. Graph {minimal.index} of seed {seed}, "
        f"shrunk to {minimal.minimal_size[0]} op node(s)."
    )
    return upstream_source(adapter, engine_name, minimal.minimal, minimal.expected, headline)
