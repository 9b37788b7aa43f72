"""`report.md`: the audit for people.

It leads with the verdict, then what to fix: one section per group of failures (same
kind, backend and op), each with its minimal case shown the way the notebook's
`print_all` shows a run (every node with its inputs, value and gradient, expected against
actual), and the commands that replay it. Coverage, margins and timing follow.
"""

from __future__ import annotations

import json
import shlex
import sys

from ..backends import DEFAULT_ENGINE
from ..check.modes import case_tangents
from ..diagnose import NOT_CHECKED, OK, Investigation
from ..failures import FailureDatabaseRun
from ..format import json_default, validate_case
from ..kinds import CONVENTIONS, WHAT_TO_FIX, Kind
from .model import Coverage, Group, ModeUse, Report, Summary, unavailable_line


def replay_command(case_file: str, engine_spec: str) -> str:
    command = ["autodiff-audit", "replay", case_file]
    if engine_spec != DEFAULT_ENGINE:
        command += ["--engine", engine_spec]
    return shlex.join(command)


def _margin(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _short(value, limit: int = 200) -> str:
    text = json.dumps(value, default=json_default)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_all_view(investigation: Investigation) -> list[str]:
    """The minimal case node by node, like the notebook's print_all, expected against actual.
    "<-- differs" marks what the verdict itself found wrong (`differs`), never a second comparison."""
    case = investigation.minimal
    assert case is not None  # only a shrunk investigation has a view
    graph = case["graph"]
    lines = ["```text", "FD: " + "  ".join(f"{name} {_short(v)}" for name, v in case["values"].items())]
    for entry in graph["inputs"]:
        lines += [
            f"{entry['name']}  (input, shape {entry['shape']})",
            f"  val: {_short(case['values'][entry['name']])}",
        ]
        actual = (investigation.actual or {}).get("gradients", {}).get(entry["name"])
        expected = (investigation.expected or {}).get("gradients", {}).get(entry["name"])
        if expected is not None:
            flag = "   <-- differs" if entry["name"] in investigation.differs else ""
            lines.append(f"  gra: expected {_short(expected)}, actual {_short(actual)}{flag}")
    for node in investigation.nodes:
        attrs = ", ".join(f"{k}={json.dumps(v)}" for k, v in node.attrs.items())
        marker = "" if node.verdict == OK else f"   <-- {node.verdict} rule wrong here"
        if node.verdict == Kind.CONVENTION:
            marker = "   <-- valid at the kink, but no reference's convention"
        elif node.verdict == NOT_CHECKED:
            marker = f"   <-- {node.detail}"
        lines += [f"{node.name} = {node.op}({', '.join(node.inputs)}{'; ' + attrs if attrs else ''}){marker}"]
        lines += [f"  in:  {node.inputs}"]
        value_flag = "   <-- differs" if "value" in node.differs else ""
        lines += [f"  val: expected {_short(node.value)}, actual {_short(node.actual_value)}{value_flag}"]
        lines += [f"  cotangent: {_short(node.adjoint)}"]
        for operand, local in zip(node.inputs, node.local_inputs):
            expected = node.expected_vjp.get(local)
            actual = node.actual_vjp.get(local)
            flag = "   <-- differs" if local in node.differs else ""
            slot = operand if local == operand else f"{operand} (second slot)"
            lines.append(f"  gra {slot}: expected {_short(expected)}, actual {_short(actual)}{flag}")
    lines += [f"output: {graph['output']}   cotangent: {_short(case['cotangent'])}"]
    return [*lines, *_forward_lines(investigation), "```"]


def _forward_lines(investigation: Investigation) -> list[str]:
    """A forward-mode or second-order group's minimal case: the tangent t1 (from the case's seed,
    as a replay prints it) and J t1 or H t1, expected against actual."""
    expected, actual = investigation.expected or {}, investigation.actual or {}
    modes = {Kind.JVP: ("jvp",), Kind.HVP: ("hvp",), Kind.MODE_MISMATCH: ("jvp", "hvp")}.get(investigation.kind, ())
    shown = [mode for mode in modes if mode in expected or mode in actual]
    if not shown:
        return []
    case = validate_case(investigation.minimal)
    lines = ["tangent t1: " + "  ".join(f"{name} {_short(t)}" for name, t in case_tangents(case, 0).items())]
    if "jvp" in shown:
        flag = "   <-- differs" if "jvp" in investigation.differs else ""
        lines.append(f"jvp (J t1): expected {_short(expected.get('jvp'))}, actual {_short(actual.get('jvp'))}{flag}")
    for name in case.values if "hvp" in shown else ():
        flag = "   <-- differs" if f"hvp {name}" in investigation.differs else ""
        wanted, given = (expected.get("hvp") or {}).get(name), (actual.get("hvp") or {}).get(name)
        lines.append(f"hvp {name} (H t1): expected {_short(wanted)}, actual {_short(given)}{flag}")
    return lines


def failure_view(
    findings: list, shrunk: Investigation | None, whole: dict, shown_in: str | None = None
) -> tuple[list[str], list[str], dict]:
    """A failing case as text (the pytest plugin's failure): the headline (the diagnosis, then
    every finding when there are several), the minimal case node by node, and the case to show
    (`whole`, the case as generated, where it was not shrunk). A failure like one shown in full
    before (`shown_in`, its test's id) gets its headline and a pointer there."""
    first = findings[0]
    if shown_in is not None:
        where = f"op {first.op!r}" if first.op else "no single op"
        return [f"{first.kind} in {where}: {first.detail}"], [f"the same as {shown_in}, shown in full there"], whole
    if shrunk is None or shrunk.minimal is None:  # a diagnosis that fails leaves the finding as it was found
        lines = [f"{first.kind}: {first.detail}"]
        why = f"a {first.kind} is not shrunk" if shrunk is None else f"the case could not be shrunk ({shrunk.error})"
        view, minimal = [f"{why}; the whole case:"], whole
    else:
        where = f"op {shrunk.op!r}" if shrunk.op else "no single op (composition)"
        lines = [f"{shrunk.kind} in {where}: {first.detail}"]
        node = f", node {shrunk.node!r} is wrong" if shrunk.node else ""
        confirmed = "confirmed by every reference" if shrunk.confirmed else "NOT confirmed by every reference"
        (nodes, elements), (original_nodes, original_elements) = shrunk.minimal_size, shrunk.original_size
        view = [
            f"minimal case: {nodes} op nodes and {elements} input elements{node} (shrunk from {original_nodes} "
            f"and {original_elements} in {shrunk.shrink_seconds} s; {confirmed}):",
            *(line for line in print_all_view(shrunk) if not line.startswith("```")),
        ]
        minimal = shrunk.minimal
    if len(findings) > 1:
        lines += [f"all {len(findings)} findings against the engine on this case:"]
        lines += [f"  {f.kind}: {f.detail}" for f in findings]
    return lines, view, minimal


def _graph_list(graphs: list[int]) -> str:
    return ", ".join(map(str, graphs[:12])) + (" …" if len(graphs) > 12 else "")


def _group_section(group: Group, report: Report) -> list[str]:
    op = f"`{group.op}`" if group.op else "no single op"
    title = f"### {group.kind} in {op}, {group.backend or 'the references'}"
    graphs = _graph_list(group.graphs)
    first, spec = report.first_of(group), report.summary.backends.engine_spec
    lines = [title, "", f"{group.discrepancies} discrepancies in {len(group.graphs)} graphs ({graphs}).", ""]
    lines += [f"First, in graph {first.index}: {first.detail}"]  # a crash's type, message and place
    minimal = report.minimal_case_of(group)
    if minimal is None:
        lines += ["", f"No minimal case: {group.why_no_minimal}."]
        if first.case_file:
            lines += ["", "```bash", replay_command(first.case_file, spec), "```"]
        return [*lines, ""]
    size, original = minimal.minimal_size, minimal.original_size
    assert minimal.case_file is not None  # a group's minimal case failed again, and has its file
    lines += [
        "",
        f"Minimal case (graph {minimal.index}, shrunk from {original[0]} op nodes and {original[1]} input "
        f"elements to {size[0]} and {size[1]} in {minimal.shrink_seconds} s; confirmed by every reference):",
        "",
        *print_all_view(minimal),
        "",
        "```bash",
        replay_command(minimal.case_file, spec),
    ]
    lines += [f"pytest {shlex.quote(minimal.reproducer)}"] if minimal.reproducer else []
    lines += [f"python {shlex.quote(minimal.upstream)}  # numpy and the engine only"] if minimal.upstream else []
    return [*lines, "```", ""]


def _answers(counts: dict) -> str:
    return ", ".join(f"{answer} ({n})" if len(counts) > 1 else answer for answer, n in counts.items()) or "-"


def _conventions_section(report: Report) -> list[str]:
    """Kink mode: what each backend answers at each kink, apart from the bugs."""
    conventions = report.summary.conventions
    if not conventions.kinks:
        return []
    references = sorted({r for row in conventions.kinks for r in row.references})
    lines = [
        "## Conventions at kinks",
        "",
        "Where an op is not differentiable, any answer inside the op table's rule is valid "
        "(relu'(0) in [0, 1], abs'(0) in [-1, 1], a tie's parts convex shares of the cotangent). "
        "An engine that follows a reference passes; a valid answer no reference gives is a `convention` finding.",
        "",
        "| kink | nodes | engine | " + " | ".join(references) + " | engine follows |",
        "| --- | ---: | --- | " + " | ".join("---" for _ in references) + " | --- |",
    ]
    for row in conventions.kinks:
        given = [_answers(row.references.get(r, {})) for r in references]
        follows = ", ".join(f"{who} ({n})" for who, n in row.engine_follows.items())
        lines.append(f"| {row.kink} | {row.nodes} | {_answers(row.engine)} | " + " | ".join(given) + f" | {follows} |")
    lines.append("")
    if conventions.reference_differences:
        example = report.reference_conventions[0]
        lines += [
            f"The references differ among themselves in {conventions.reference_differences} graphs, each time "
            f"only in their conventions at kinks (graph {example.index}: {example.detail}): shown, not blamed.",
            "",
        ]
    for group in report.groups_shown_under(CONVENTIONS):
        lines += _group_section(group, report)
    return lines


def _not_reproduced_section(report: Report) -> list[str]:
    """Groups whose shrunk cases passed when checked again: a flaky engine, or a finding at the
    edge of the tolerance. Counted, and listed, but not shown as a bug."""
    groups = report.not_reproduced()
    if not groups:
        return []
    lines = [
        "## Failures that did not fail again",
        "",
        "Their shrunk cases passed when checked again against every reference, so no minimal case is shown "
        "as the bug. Replay an original case to see it: if its answer changes from run to run, the engine is "
        "nondeterministic.",
        "",
        "| kind | op | backend | discrepancies | graphs |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for g in groups:
        graphs = _graph_list(g.graphs)
        op = f"`{g.op}`" if g.op else "-"
        lines.append(f"| {g.kind} | {op} | {g.backend or '-'} | {g.discrepancies} | {graphs} |")
    return [*lines, ""]


LISTED_OUT_OF_REACH = 8  # past this many, the features an audit cannot produce fold into one line


def _coverage_section(coverage: Coverage) -> list[str]:
    """What the audit exercised, and what its flags can never produce."""
    lines = [
        "## Coverage",
        "",
        f"- ops: {sum(1 for n in coverage.ops.values() if n)} of {len(coverage.ops)} exercised",
        f"- producer-to-consumer op pairs: {coverage.op_pairs_seen} of {coverage.op_pairs_possible}",
        f"- graph features: {coverage.features_seen} of {coverage.features_total}",
    ]
    if coverage.kinks is not None:
        lines.append("- kinks: " + (", ".join(f"{k} ({n})" for k, n in coverage.kinks.items()) or "none reached"))
    else:
        lines.append("- kinks: none (not in kink mode: --kinks)")
    if len(coverage.out_of_reach) > LISTED_OUT_OF_REACH:  # an engine of a few ops: one line, the reasons in JSON
        features = ", ".join(f"`{feature}`" for feature in coverage.out_of_reach)
        lines += ["", f"**Never produced with these flags** ({len(coverage.out_of_reach)} graph features, so a bug "
                  f"that needs them cannot be caught here; why each: `summary.coverage.out_of_reach` in report.json): "
                  f"{features}"]  # fmt: skip
    elif coverage.out_of_reach:
        lines += ["", "**Never produced with these flags**, so a bug that needs them cannot be caught here:", ""]
        lines += [f"- `{feature}`: {why}" for feature, why in coverage.out_of_reach.items()]
    if coverage.not_seen:
        lines += ["", "Possible with these flags but not reached in this audit (more graphs would): "
                  + ", ".join(f"`{f}`" for f in coverage.not_seen)]  # fmt: skip
    lines += ["", "| feature | graphs |", "| --- | ---: |"]
    lines += [f"| `{feature}` | {count} |" for feature, count in coverage.features.items()]
    return [*lines, ""]


MODE_NAMES = {"vjp": "vjp (reverse)", "jvp": "jvp (forward)", "hvp": "hvp (second order)"}


def derivative_modes_table(modes) -> list[str]:
    """Which derivative modes ran, with their checks and the engine's worst margin in each."""
    lines = [
        "## Derivative modes", "",
        "| mode | checked | graphs | checks | worst engine margin | discrepancies |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    for m in modes:
        checked = "yes" if m.checked else f"no: {m.why_not}"
        cells = [MODE_NAMES.get(m.name, m.name), checked, m.graphs, m.checks, _margin(m.worst_margin), m.discrepancies]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return [*lines, ""]


def verdict_line(s: Summary) -> str:
    """PASS, FAIL or INTERRUPTED, with the counts that say so."""
    verdict = "PASS: no discrepancies" if not s.discrepancies else f"FAIL: {s.discrepancies} discrepancies"
    if s.time_budget_seconds and s.graphs < s.graphs_requested:
        spent = f"the time budget of {s.time_budget_seconds:g} s was spent"
        verdict += f" in {s.graphs} of {s.graphs_requested} graphs ({spent})"
    if s.interrupted:
        verdict = f"INTERRUPTED after {s.graphs} of {s.graphs_requested} graphs, " + (
            "no discrepancy among them (not a pass)" if not s.discrepancies else f"{s.discrepancies} discrepancies"
        )
    return verdict


def render_markdown(report: Report) -> str:
    s = report.summary
    b = s.backends
    lines = [
        f"# Audit of `{b.engine}`: {verdict_line(s)}",
        "",
        f"{s.graphs} random graphs (seed {s.seed}), {s.checks} checks, "
        f"{s.failing_graphs} failing graphs, in {s.wall_seconds} s ({s.graphs_per_second} graphs/s, "
        f"on {s.ran_on or str(s.workers) + ' workers'}).",
        "",
        _mode_line(s.mode),
        "",
        *_failure_database_lines(s.failure_database),
        f"- engine under test: `{b.engine_spec}`",
        f"- references: {', '.join(b.references) or 'none'}",
    ]
    for name, reason in b.unavailable.items():
        lines.append(f"- {unavailable_line(name, reason)}")
    for name, note in b.notes.items():
        lines.append(f"- note: {name}: {note}")
    if b.left_running:
        lines.append(
            f"- **left running:** {len(b.left_running)} processes that the engine (or a reference) started outlived "
            f"every kill and were still running when the audit ended: {', '.join(b.left_running)}"
        )
    if s.generation.redraws:
        lines.append(
            f"- the generator rebuilt {s.generation.redraws} values to keep their domains "
            f"({s.generation.graphs_with_a_redraw} graphs)"
        )
    if s.skipped.graphs:
        reasons = "; ".join(f"{reason} ({count})" for reason, count in s.skipped.reasons.items())
        lines.append(f"- skipped {s.skipped.graphs} graphs the engine declines: {reasons}")
    lines.append(f"- worst margin of a passing graph (error / tolerance; 1 fails): {_margin(s.worst_passing_margin)}")
    versions_line = ", ".join(f"{k} {v}" for k, v in s.versions.items() if v and k != "platform")
    lines += [f"- versions: {versions_line}", ""]
    lines += derivative_modes_table(s.derivative_modes)

    bugs = report.groups_shown_under(WHAT_TO_FIX)
    if bugs:
        lines += ["## What to fix", "", "| kind | op | backend | discrepancies | graphs | minimal case |"]
        lines += ["| --- | --- | --- | ---: | ---: | --- |"]
        for g in bugs:
            size = g.minimal_size
            minimal = f"{size.op_nodes} op nodes, {size.input_elements} elements" if size else "-"
            op = f"`{g.op}`" if g.op else "-"
            cells = [g.kind, op, g.backend or "-", g.discrepancies, len(g.graphs), minimal]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append("")
        for g in bugs:
            lines += _group_section(g, report)
    lines += _conventions_section(report)
    lines += _not_reproduced_section(report)

    lines += _coverage_section(s.coverage)
    lines += ["## Per op", "", "| op | graphs | checks | worst engine margin | failing graphs |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    for op, e in s.ops.items():
        lines.append(f"| `{op}` | {e.graphs} | {e.checks} | {_margin(e.max_margin)} | {e.failures} |")

    if report.discrepancies:
        lines += ["", "## Discrepancies", ""]
        shown = report.discrepancies[:20]
        for d in shown:
            where = d.quantity or "evaluation"
            if d.input:
                where += f" of input `{d.input}`"
            op = f", op `{d.op}`" if d.op else ""
            lines += [f"### graph {d.index}: {d.kind} in {d.backend or 'the references'}{op}, {where}"]
            lines += ["", d.detail, ""]
            if d.case_file:
                lines += ["```bash", replay_command(d.case_file, b.engine_spec), "```", ""]
            if d.expected is not None or d.actual is not None:
                lines += [f"- expected ({', '.join(d.expected_from) or 'references'}): `{_short(d.expected)}`"]
                lines += [f"- actual: `{_short(d.actual)}`", ""]
        if len(report.discrepancies) > len(shown):
            lines.append(f"… and {len(report.discrepancies) - len(shown)} more in report.json.")
    if s.kinds:
        lines += ["", "Kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(s.kinds.items()))]
    lines += ["", "## Time per backend (seconds, all graphs)", ""]
    lines += [f"- {name}: {seconds}" for name, seconds in s.backend_seconds.items()]
    if s.shrinking.shrunk:
        lines.append(f"- shrinking: {s.shrinking.shrunk} cases, median {s.shrinking.median_seconds} s each")
    lines += ["", f"Command line: `{shlex.join(sys.argv)}`", ""]
    return "\n".join(lines)


def _mode_line(mode: ModeUse) -> str:
    if mode.name == "full":
        return "Mode: full (every reference checks every graph)."
    because = ", ".join(f"{n} {why}" for why, n in mode.jax_because.items()) or "none"
    fraction = "no graph" if mode.jax_fraction is None else f"{mode.jax_fraction:.1%} of the graphs"
    return (
        f"Mode: tiered (PyTorch and finite differences check every graph; JAX saw {fraction}: {because}; "
        f"sample rate {mode.jax_sample:g})."
    )


def _failure_database_lines(known: FailureDatabaseRun | None) -> list[str]:
    if not known:
        return []
    if not known.known and not known.added and not known.errors:
        return [f"Failure database `{known.folder}`: no known failing case of this engine.", ""]
    outcomes = (("still_fails", "still fail"), ("regressions", "REGRESSED (fixed before, failing again)"),
                ("fixed", "fixed"))  # fmt: skip
    parts = [f"{len(getattr(known, key))} {label}" for key, label in outcomes]
    lines = [f"Failure database `{known.folder}`: {known.known} known failing cases replayed first: "
             + ", ".join(parts) + (f", {known.not_replayed} not replayed" if known.not_replayed else "")
             + f"; {len(known.added)} new minimal cases kept."]  # fmt: skip
    for key, label in (("regressions", "regression"), ("still_fails", "still fails"), ("fixed", "fixed")):
        lines += [f"- `{case}`: {label}" for case in getattr(known, key)]
    lines += [f"- could not be kept: {error}" for error in known.errors]
    return [*lines, ""]
