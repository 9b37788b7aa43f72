"""The gallery and the standalone reproducers for upstream, as a user runs them: `autodiff-audit
gallery` on an engine whose adapter is in the layout of oracles/engines/compose.py, the README it
writes, and every command it prints, run exactly as printed. And the README of this project says
what the gallery command printed (docs/gallery.json is that command's record).

The engine here is JAX with one rule of its own that is wrong: sin's derivative given as sin
(`jax.custom_vjp`), so that what the audit finds is known, and its script, which must import
nothing but numpy and JAX, shows it."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oracles.gallery import BEGIN, END, readme_gallery, render_gallery
from oracles.report.upstream import adapter_source

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SIN_BUG_ADAPTER = textwrap.dedent('''
    """JAX, with sin's derivative written wrong: sin where it is cos."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from oracles.engines.compose import plug_in

    jax.config.update("jax_enable_x64", True)
    name = "jax-with-a-wrong-sin"


    @jax.custom_vjp
    def wrong_sin(a):
        return jnp.sin(a)


    def wrong_sin_forward(a):
        return jnp.sin(a), a


    def wrong_sin_backward(a, g):
        return (g * jnp.sin(a),)  # the bug: d sin = cos


    wrong_sin.defvjp(wrong_sin_forward, wrong_sin_backward)

    OPS = {
        "add": lambda a, b, attrs: a + b,
        "mult": lambda a, b, attrs: a * b,
        "sin": lambda a, attrs: wrong_sin(a),
        "reduce_sum": lambda a, attrs: jnp.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    }
    ops = set(OPS)


    def vjp_of(function, arrays, cotangent):
        value, vjp = jax.vjp(function, *(jnp.asarray(a) for a in arrays))
        return np.asarray(value), [np.asarray(g) for g in vjp(jnp.asarray(cotangent))]


    evaluate, jvp, hvp = plug_in(OPS, vjp_of)
''')


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """A folder where `autodiff-audit gallery` has audited the adapter above and written a README."""
    folder = tmp_path_factory.mktemp("gallery")
    (folder / "sin_bug_adapter.py").write_text(SIN_BUG_ADAPTER)
    (folder / "README.md").write_text(f"# Engines\n\nBefore.\n\n{BEGIN}\nold table\n{END}\n\nAfter.\n")
    done = run(
        "autodiff-audit", "gallery", "--engines", "sin_bug_adapter", "--graphs", "6", "--settings", "float64,kinks",
        "--report", "g", "--readme", "README.md", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]  # it found a bug
    return folder


def test_the_gallery_writes_its_table_between_the_readme_s_markers_and_nothing_else(gallery):
    readme = (gallery / "README.md").read_text()
    assert readme.startswith("# Engines\n\nBefore.\n\n") and readme.endswith("\nAfter.\n")
    assert "old table" not in readme
    record = json.loads((gallery / "docs" / "gallery.json").read_text())
    assert readme_gallery(gallery / "README.md") == render_gallery(record) == (gallery / "g/gallery.md").read_text()
    assert [(a["setting"], a["exit"]) for a in record["audits"]] == [("float64", 1), ("kinks", 1)]
    for audit in record["audits"]:
        assert audit["graphs"] == 6 and audit["checks"] > 0
        assert audit["references"] == ["jax", "torch", "numeric"]
        assert f"| {audit['name']} | {audit['setting']} | 6 | {audit['checks']:,} |" in readme


def test_the_wrong_rule_is_listed_as_a_real_bug_with_commands_that_work_as_printed(gallery):
    record = json.loads((gallery / "docs" / "gallery.json").read_text())
    groups = [g for a in record["audits"] for g in a["groups"]]
    assert {(g["kind"], g["op"], g["class"]) for g in groups} == {("gradient", "sin", "real bug")}
    readme = (gallery / "README.md").read_text()
    group = groups[0]
    assert f"`{group['replay']}`" in readme and f"`{group['script']}`" in readme
    replayed = run(*shlex.split(group["replay"]), cwd=gallery)
    assert replayed.returncode == 1, replayed.stdout[-2000:] + replayed.stderr[-2000:]
    assert "gradient" in replayed.stdout
    shown = run(*shlex.split(group["script"].replace("python", sys.executable, 1)), cwd=gallery)
    assert shown.returncode == 1, shown.stderr[-2000:]
    assert "WRONG" in shown.stdout and "gradient of" in shown.stdout


def test_a_script_for_upstream_imports_only_numpy_and_the_engine(gallery):
    scripts = sorted((gallery / "g").glob("*/*/upstream/*.py"))
    assert scripts, "no script for upstream was written"
    for script in scripts:
        imported = set()
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
        assert imported <= {"sys", "traceback", "numpy", "jax"}, (script.name, imported)
        # Run with -X importtime: the modules it loaded are named on stderr, and no harness module is.
        done = subprocess.run([sys.executable, "-X", "importtime", str(script)], capture_output=True, text=True,
                              cwd=script.parent, timeout=300)  # fmt: skip
        assert done.returncode == 1, done.stdout[-2000:]
        loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
        assert not loaded & {"oracles", "autodiff", "sin_bug_adapter"}, script.name


def test_the_script_says_the_engine_is_right_once_the_rule_is_fixed(gallery, tmp_path):
    script = sorted((gallery / "g").glob("*/float64/upstream/*.py"))[0]
    fixed = script.read_text().replace("return (g * jnp.sin(a),)", "return (g * jnp.cos(a),)")
    assert fixed != script.read_text()
    (tmp_path / "fixed.py").write_text(fixed)
    done = subprocess.run([sys.executable, "fixed.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "WRONG" not in done.stdout


def test_the_adapters_of_the_package_are_all_in_the_layout_a_script_is_written_from():
    from oracles.engines import SHORT_NAMES

    assert sorted(SHORT_NAMES) == sorted(
        ["autograd", "mygrad", "tensorflow", "tinygrad", "micrograd", "mlx", "pytensor", "torch", "jax"]
    )
    for name in SHORT_NAMES:
        assert adapter_source(name) is not None, name


def test_the_readme_says_what_the_gallery_command_printed():
    record = json.loads((REPO / "docs" / "gallery.json").read_text())
    assert readme_gallery(REPO / "README.md") == render_gallery(record)
    engines = {a["engine"] for a in record["audits"]}
    assert engines == {"micrograd", "tinygrad", "mygrad", "autograd", "tensorflow", "mlx", "pytensor", "torch", "jax"}
    assert record["date"] in readme_gallery(REPO / "README.md")


def test_an_engine_of_a_reference_s_library_is_not_judged_by_that_reference(tmp_path):
    done = run("autodiff-audit", "audit", "--engine", "jax", "--graphs", "3", "--report", "r", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "report.json").read_text())["summary"]
    assert summary["backends"]["references"] == ["torch", "numeric"]
    assert summary["backends"]["unavailable"]["jax"].startswith("left out: the engine under test (jax)")
    assert "left out: jax: the engine under test (jax) is this reference's own library" in done.stdout
    assert "- left out: jax:" in (tmp_path / "r" / "report.md").read_text()
