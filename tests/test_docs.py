"""The op table in docs/graph-format.md is generated from the code and kept current."""

from __future__ import annotations

import pytest

from oracles.ops import OPS, Op, op_table_markdown
from tools import update_docs as docs
from tools.update_docs import BEGIN, DOC_PATH, END, DocsError, render_graph_format_doc, update_op_table

STALE = f"# Title\n\nProse before.\n\n{BEGIN}\n| op |\n| --- |\n| `old` |\n{END}\n\nProse after.\n"


def test_the_committed_doc_has_the_current_op_table():
    assert DOC_PATH.read_text(encoding="utf-8") == render_graph_format_doc(), (
        "docs/graph-format.md is out of date with oracles/ops/table.py: run python -m tools.update_docs"
    )


def test_the_committed_doc_shows_the_generated_table_between_its_markers():
    text = DOC_PATH.read_text(encoding="utf-8")
    region = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert region == "\n" + op_table_markdown() + "\n"


def test_adding_an_op_makes_the_doc_out_of_date(monkeypatch):
    current = render_graph_format_doc()
    monkeypatch.setitem(OPS, "negate", Op("negate", 1, "elementwise `-a`", lambda a, _: a, lambda a, _: -a))
    assert "`negate`" in update_op_table(current)
    assert update_op_table(current) != current


def test_update_op_table_replaces_only_the_marked_region():
    assert update_op_table(STALE, "| op |\n| --- |\n| `new` |") == (
        f"# Title\n\nProse before.\n\n{BEGIN}\n| op |\n| --- |\n| `new` |\n{END}\n\nProse after.\n"
    )


def test_update_op_table_uses_the_op_table_by_default():
    assert update_op_table(STALE) == update_op_table(STALE, op_table_markdown())


def test_update_op_table_is_idempotent():
    once = update_op_table(STALE)
    assert update_op_table(once) == once


@pytest.mark.parametrize(
    "text",
    ["no markers at all\n", f"{BEGIN}\nonly the start\n", f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n"],
    ids=["none", "no end", "twice"],
)
def test_a_doc_without_exactly_one_pair_of_markers_is_an_error(text):
    with pytest.raises(DocsError, match="expected exactly one"):
        update_op_table(text)


def test_markers_in_the_wrong_order_are_an_error():
    with pytest.raises(DocsError, match="comes before"):
        update_op_table(f"{END}\n{BEGIN}\n")


def test_check_exits_1_with_one_line_when_the_doc_is_stale(tmp_path, capsys):
    path = tmp_path / "graph-format.md"
    path.write_text(STALE, encoding="utf-8")
    assert docs.main(["--check", "--path", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"{path}: the op table is out of date; run python -m tools.update_docs\n"
    assert path.read_text(encoding="utf-8") == STALE  # --check never writes


def test_check_exits_0_when_the_doc_is_current(tmp_path, capsys):
    path = tmp_path / "graph-format.md"
    path.write_text(update_op_table(STALE), encoding="utf-8")
    assert docs.main(["--check", "--path", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_main_rewrites_the_table_in_place(tmp_path):
    path = tmp_path / "graph-format.md"
    path.write_text(STALE, encoding="utf-8")
    assert docs.main(["--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == update_op_table(STALE)


def test_main_exits_2_with_one_line_for_a_doc_without_markers(tmp_path, capsys):
    path = tmp_path / "graph-format.md"
    path.write_text("no markers\n", encoding="utf-8")
    assert docs.main(["--check", "--path", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
