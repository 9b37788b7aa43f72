"""The selftest's report: its summary and a row per planted bug, as report.json holds them,
rendered as report.md and on the terminal."""

from __future__ import annotations

from ..backends import DERIVATIVE_MODES
from ..generate import GeneratorConfig
from ..ops import OPS
from .run import BugResult


def selftest_report(
    results: list[BugResult], generator: GeneratorConfig, graphs: int, seeds, mode: str, jax_sample: float,
    interrupted: bool, modes=DERIVATIVE_MODES,
) -> dict:  # fmt: skip
    """report.json of a selftest: {"summary": ..., "bugs": [a row per bug]}. `modes` are the
    derivative modes checked; a bug in another mode survives, and its row says why."""
    rows = [result.row() for result in results]
    for row in rows:
        row["mode_checked"] = row["mode"] in modes
    caught = sum(row["caught"] for row in rows)
    settings = {
        "--max-rank": generator.max_rank, "--max-dim": generator.max_dim, "--dtype": generator.dtype,
        "--min-nodes": generator.min_nodes, "--max-nodes": generator.max_nodes,
        "--ops": "all" if tuple(generator.ops) == tuple(OPS) else ",".join(generator.ops),
        "--kinks": generator.kinks, "--mode": mode, "--modes": ",".join(m for m in DERIVATIVE_MODES if m in modes),
        **({"--jax-sample": jax_sample} if mode == "tiered" else {}),
    }  # fmt: skip
    # The kill rate per derivative mode: of the bugs that live in it, how many were caught.
    by_mode = {}
    for m in DERIVATIVE_MODES:
        living = [row for row in rows if row["mode"] == m]
        by_mode[m] = {"bugs": len(living), "caught": sum(row["caught"] for row in living)}
    checked = sum(result.graphs_checked for result in results)
    summary = {
        "bugs": len(rows), "caught": caught, "kill_rate": caught / len(rows) if rows else 0.0,
        "graphs": graphs, "seeds": list(seeds), "settings": settings, "interrupted": interrupted,
        "survivors": [row["bug"] for row in rows if not row["caught"]],
        "modes": by_mode,
        "graphs_checked": checked,
        "jax_fraction": round(sum(result.jax_graphs for result in results) / checked, 4) if checked else None,
    }  # fmt: skip
    return {"summary": summary, "bugs": rows}


def render_markdown(summary: dict, rows: list[dict]) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in summary["settings"].items())
    lines = [
        f"# Selftest: {summary['caught']} of {summary['bugs']} planted bugs caught "
        f"(kill rate {summary['kill_rate']:.0%})" + (" - INTERRUPTED" if summary["interrupted"] else ""),
        "",
        f"Settings: {settings}. Each bug is hunted in the audit's own cases of seeds "
        f"{', '.join(map(str, summary['seeds']))}, up to {summary['graphs']} graphs each; JAX checked "
        f"{summary['jax_fraction'] or 0:.1%} of the {summary['graphs_checked']} graphs checked.",
        "",
        f"Kill rate per derivative mode: {_per_mode(summary)}.",
        "",
        "| bug | category | op | mode | caught (seeds) | graphs to catch (median / worst) | minimal case "
        "| blamed right |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        taken = f"{row['median_graphs']:g} / {row['worst_graphs']}" if row["caught"] else "-"
        minimal = (
            f"{row['minimal_op_nodes']} op nodes, {row['minimal_elements']} elements"
            if row["minimal_op_nodes"]
            else "-"
        )
        right = {True: "yes", False: f"no ({_blame(row)})", None: "-"}[row["blamed_right"]]
        caught = f"yes ({row['seeds_caught']}/{len(summary['seeds'])})" if row["caught"] else "**no**"
        lines.append(
            f"| `{row['bug']}` | {row['category']} | {row['op'] or '-'} | {row['mode']} | {caught} | {taken} "
            f"| {minimal} | {right} |"
        )
    survivors = [row for row in rows if not row["caught"]]
    if survivors:
        lines += ["", "Survivors (these settings cannot see them):", ""]
        lines += [f"- `{row['bug']}`: {row['description']}{_unchecked(row)}" for row in survivors]
    return "\n".join(lines) + "\n"


def _per_mode(summary: dict) -> str:
    return ", ".join(
        f"{mode} {counts['caught']} of {counts['bugs']}" for mode, counts in summary["modes"].items() if counts["bugs"]
    )


def _blame(row: dict) -> str:
    return f"{row['kind']} in {row['blamed_op']}, {row['blamed_mode']}"


def _unchecked(row: dict) -> str:
    """Why a survivor could not be seen, when it is because its mode was not checked."""
    return "" if row["mode_checked"] else f" ({row['mode']} is not among the modes checked: --modes)"


def print_selftest(summary: dict, rows: list[dict]) -> None:
    """The selftest on the terminal: a row per bug, the kill rate, the survivors."""
    header = ["bug", "category", "op", "mode", "caught", "graphs (median/worst)", "minimal (op nodes)", "blamed right"]
    table = []
    for row in rows:
        taken = f"{row['median_graphs']:g}/{row['worst_graphs']}" if row["caught"] else "-"
        right = {True: "yes", False: f"no: {_blame(row)}", None: "-"}[row["blamed_right"]]
        table.append([row["bug"], row["category"], row["op"] or "-", row["mode"],
                      f"{row['seeds_caught']}/{len(summary['seeds'])}" if row["caught"] else "NO", taken,
                      str(row["minimal_op_nodes"] or "-"), right])  # fmt: skip
    widths = [max(len(line[k]) for line in [header, *table]) for k in range(len(header))]
    for line in [header, *table]:  # plain columns: a bug's name is its handle, never cut
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    settings = " ".join(f"{k} {v}" for k, v in summary["settings"].items())
    print(
        f"selftest: {summary['caught']} of {summary['bugs']} planted bugs caught (kill rate "
        f"{summary['kill_rate']:.0%}) within {summary['graphs']} graphs of seeds {summary['seeds']}; {settings}"
    )
    print(f"selftest: kill rate per derivative mode: {_per_mode(summary)}")
    if summary["survivors"]:
        print(f"survived (these settings cannot see them): {', '.join(summary['survivors'])}")
    unchecked = [m for m in DERIVATIVE_MODES if any(r["mode"] == m and not r["mode_checked"] for r in rows)]
    if unchecked:
        print(f"selftest: {', '.join(unchecked)} not among the modes checked (--modes): the bugs there cannot be seen")
    for row in rows:
        if row["error"]:  # a hunt that could not finish counts as a survivor, never as a catch
            print(f"selftest: {row['bug']}: the hunt could not finish: {row['error']}")
