"""The README's promises: two commands first, and a plug-in example that is the real file."""

import re
from pathlib import Path

from oracles.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_first_code_block_is_two_commands_setup_and_main_job_then_tests():
    first = re.search(r"```\w*\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
    assert len(first) == 2
    assert "autodiff-audit audit" in first[0]
    assert "pytest" in first[1]
    assert all("venv" in line and "pip install" in line for line in first)


def test_the_plugin_example_in_the_readme_is_examples_elementwise_engine():
    example = (ROOT / "examples" / "elementwise_engine.py").read_text()
    assert example in code_blocks("python")


def test_the_plugin_example_passes_an_audit(tmp_path):
    code = main(
        ["audit", "--engine", "examples.elementwise_engine", "--graphs", "25", "--workers", "1",
         "--oracles", "numeric", "--report", str(tmp_path)]
    )  # fmt: skip
    assert code == 0


def test_the_readme_op_table_is_generated_from_the_op_table():
    from tools.update_docs import update_op_table

    assert update_op_table(README) == README, "run: python -m tools.update_docs --path README.md"
