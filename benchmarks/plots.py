"""Performance plots (matplotlib, Agg backend): time against size, cost per node, the
backward/forward ratio and the JIT crossover.

Each plot is made to be read as saved: titles are wrapped to the figure's width; legends sit
outside the plotting area, so that none covers a curve; colour is the backend and line style
the pass, and the legend says which style is which; a curve that stops before the family's
largest size ends in a square whose legend entry says why (the reason the suite recorded in
the JSON). A family measured at one size gets bars (`time_at_one_size_<family>.png`) instead
of a plot against size, which would be one column of dots.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from .results import (
    BACKENDS,
    BACKWARD_OVER_FORWARD_LIMIT,
    FAMILIES,
    JIT,
    OURS,
    SIZE_LABELS,
    SIZE_SYMBOLS,
    Crossover,
    CurveEnd,
    Results,
    backward_over_forward,
    curve_ends,
    jit_crossovers,
    size_text,
)

# forward+backward is the number the targets are about: it gets the solid line.
PASS_STYLES = {"forward+backward": "-", "forward": "--"}
# Right of the axes, top-aligned; constrained layout shrinks the axes to make room for it.
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
END_MARKER = {
    "marker": "s",
    "markersize": 11,
    "markerfacecolor": "none",
    "markeredgecolor": "black",
    "markeredgewidth": 1.4,
    "linestyle": "none",
}
LEGEND_NOTE_CHARS = 44  # a curve-end note is wrapped to this many characters per legend line


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, same output on CI
    import matplotlib.pyplot as plt

    return plt


def _color(backend: str):
    # A backend keeps its colour in every plot; unknown ones get a stable one from their name.
    index = BACKENDS.index(backend) if backend in BACKENDS else len(BACKENDS) + sum(map(ord, backend)) % 5
    return f"C{index % 10}"


def _lines(text: str, chars: int) -> str:
    """`text` in lines of at most `chars` characters, broken at spaces only (never in "2,000-op")."""
    paragraphs = text.split("\n")
    return "\n".join(line for p in paragraphs for line in textwrap.wrap(p, chars, break_on_hyphens=False) or [""])


def _wrap(text: str, width_inches: float, fontsize: float) -> str:
    """`text` in lines that fit `width_inches` at `fontsize` (a glyph is about 0.6 em wide)."""
    return _lines(text, max(16, int(width_inches * 72 / (0.6 * fontsize))))


def _title(ax, text: str, width_inches: float, fontsize: float = 11) -> None:
    ax.set_title(_wrap(text, width_inches, fontsize), fontsize=fontsize)


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=110)  # each figure is made with layout="constrained"
    _pyplot().close(fig)
    written.append(path)


def _backend_handles(backends: list[str]) -> list:
    from matplotlib.patches import Patch

    return [Patch(facecolor=_color(backend), label=backend) for backend in backends]


def _pass_handles() -> list:
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], color="black", linestyle=style, label=f"{pass_name} ({'solid' if style == '-' else 'dashed'})")
        for pass_name, style in PASS_STYLES.items()
    ]


def _end_handles(ends: list[CurveEnd]) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], **END_MARKER, label=_lines(end.describe(), LEGEND_NOTE_CHARS)) for end in ends]


def _plot_time_vs_size(results: Results, family: str, path: Path, written: list[Path]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    backends = results.backends(family)
    for backend in backends:
        for pass_name, style in PASS_STYLES.items():
            points = [(s, results.median(family, s, pass_name, backend)) for s in results.sizes(family)]
            points = [(s, t) for s, t in points if t is not None]
            if points:
                ax.plot(*zip(*points), linestyle=style, marker="o", markersize=4, color=_color(backend))
    ends = curve_ends(results, family)
    for end in ends:
        for pass_name in end.passes:
            ax.plot([end.last_size], [results.median(family, end.last_size, pass_name, end.backend)], **END_MARKER)
    ax.set(xscale="log", yscale="log", xlabel=SIZE_LABELS.get(family, "size"), ylabel="median time per call (s)")
    _title(ax, f"{family}: median time per call against {SIZE_SYMBOLS.get(family, 'size')}", 6.0)
    handles = [*_backend_handles(backends), *_pass_handles(), *_end_handles(ends)]
    ax.legend(handles=handles, fontsize=8, handlelength=3, **LEGEND_OUTSIDE)
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path, written)


def _plot_time_at_one_size(results: Results, family: str, path: Path, written: list[Path]) -> None:
    """Bars: one pair per backend (forward+backward filled, forward hatched) at the one size."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    (size,) = results.sizes(family)
    backends = results.backends(family)
    fig, ax = plt.subplots(figsize=(4 + 1.0 * len(backends), 4.5), layout="constrained")
    width = 0.38
    for i, backend in enumerate(backends):
        for j, pass_name in enumerate(PASS_STYLES):
            seconds = results.median(family, size, pass_name, backend)
            if seconds is None:
                continue
            filled = pass_name == "forward+backward"
            ax.bar(
                i + (j - 0.5) * width, seconds, width, color=_color(backend) if filled else "white",
                edgecolor=_color(backend), hatch=None if filled else "///",
            )  # fmt: skip
    ax.set_xticks(range(len(backends)), backends)
    ax.set(yscale="log", ylabel="median time per call (s)", xlabel="backend")
    _title(ax, f"{family} {size_text(family, size)}: median time per call (one size measured)", 2.5 + len(backends))
    handles = [
        Patch(facecolor="gray", edgecolor="gray", label="forward+backward (filled)"),
        Patch(facecolor="white", edgecolor="gray", hatch="///", label="forward (hatched)"),
    ]
    ax.legend(handles=handles, fontsize=8, **LEGEND_OUTSIDE)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    _save(fig, path, written)


def _plot_cost_per_node(results: Results, families: list[str], path: Path, written: list[Path]) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(families), figsize=(8 * len(families), 4.5), squeeze=False, layout="constrained")
    for ax, family in zip(axes[0], families):
        node_counts = {results.nodes(family, s) for s in results.sizes(family)} - {None}
        # An mlp has the same op nodes at every width: against nodes its points would stack on one x.
        by_size = len(node_counts) == 1 and len(results.sizes(family)) > 1
        backends = []
        for backend in results.backends(family):
            measured = [results.get(family, s, "forward+backward", backend) for s in results.sizes(family)]
            points = [(m.size if by_size else m.nodes, m.median / m.nodes) for m in measured if m and m.nodes]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=4, color=_color(backend))
                backends.append(backend)
        ends = [end for end in curve_ends(results, family, ("forward+backward",)) if end.backend in backends]
        for end in ends:
            last = results.get(family, end.last_size, "forward+backward", end.backend)
            if last and last.nodes:
                ax.plot([last.size if by_size else last.nodes], [last.median / last.nodes], **END_MARKER)
        xlabel = f"{SIZE_LABELS.get(family, 'size')} ({node_counts.pop()} op nodes at every size)" if by_size else None
        ax.set(xscale="log", yscale="log", xlabel=xlabel or "op nodes in the graph", ylabel="median time / nodes (s)")
        _title(ax, f"{family}: forward+backward cost per node", 5.0)
        ax.legend(handles=[*_backend_handles(backends), *_end_handles(ends)], fontsize=8, **LEGEND_OUTSIDE)
        ax.grid(True, which="both", alpha=0.3)
    _save(fig, path, written)


def _plot_backward_forward(bars: dict[str, dict[str, float]], path: Path, written: list[Path]) -> None:
    """Grouped bars: one group per "family size", one bar per backend measured there."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    categories = list(dict.fromkeys(c for per_backend in bars.values() for c in per_backend))
    width_inches = min(16, max(7, 0.2 * len(categories) * len(bars))) + 2
    fig, ax = plt.subplots(figsize=(width_inches, 4.5), layout="constrained")
    width = 0.8 / len(bars)
    for i, (backend, values) in enumerate(bars.items()):
        xs = [j + i * width for j, c in enumerate(categories) if c in values]
        ax.bar(xs, [values[c] for c in categories if c in values], width, color=_color(backend))
    ax.axhline(BACKWARD_OVER_FORWARD_LIMIT, color="black", linestyle=":")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))], categories, rotation=45, ha="right")
    ax.set(xlabel="family and size", ylabel="(fwd+bwd - fwd) / fwd")
    _title(ax, "Backward pass cost in units of the forward pass", width_inches - 2.5)
    target = Line2D([], [], color="black", linestyle=":", label=f"target for {OURS} (dotted)")
    ax.legend(handles=[*_backend_handles(list(bars)), target], fontsize=8, **LEGEND_OUTSIDE)
    _save(fig, path, written)


def _crossover_note(c: Crossover) -> str:
    if c.n_star is None:
        return "jit never faster"
    if c.n_star < 1:
        return "jit faster from the first call"
    return f"n* = {c.n_star:.3g}" + ("" if c.n_star <= 1e6 else " (beyond the axis)")


def _plot_jit_crossover(crossovers: list[Crossover], path: Path, written: list[Path]) -> None:
    import numpy as np
    from matplotlib.lines import Line2D

    plt = _pyplot()
    columns = min(4, len(crossovers))
    rows = math.ceil(len(crossovers) / columns)
    width_inches = max(6.0, 4 * columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(width_inches, 3.4 * rows + 0.8), squeeze=False, layout="constrained"
    )
    n = np.logspace(0, 6, 61)
    for ax, c in zip(axes.flat, crossovers):
        assert c.compile_seconds is not None  # draw_plots passes only the crossovers with a compile time
        ax.plot(n, n * c.t_autodiff, color=_color(OURS))
        ax.plot(n, c.compile_seconds + n * c.t_jit, color=_color(JIT))
        if c.n_star is not None and 1 <= c.n_star <= 1e6:
            ax.axvline(c.n_star, color="gray", linestyle=":")
            ax.plot([c.n_star], [c.n_star * c.t_autodiff], "ko")
        ax.set(xscale="log", yscale="log", xlabel="evaluations n", ylabel="total time (s)")
        ax.minorticks_off()  # 10+ small log-log panels: minor ticks are clutter, and slow to lay out
        # What the panel shows goes in its title, not over the curves.
        _title(ax, f"{c.family} {size_text(c.family, c.size)}\n{_crossover_note(c)}", width_inches / columns - 0.6, 9)
    for ax in list(axes.flat)[len(crossovers) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=_color(OURS), label=f"{OURS}: n t"),
        Line2D([], [], color=_color(JIT), label=f"{JIT}: compile + n t"),
        Line2D([], [], color="black", marker="o", linestyle=":", label="n*: compiling pays from here"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    title = f"When does compiling pay? {OURS} against {JIT} (compile included), forward+backward"
    fig.suptitle(_wrap(title, width_inches - 0.5, 12), fontsize=12)
    _save(fig, path, written)


def draw_plots(results: Results, report_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """Writes each plot that has data; returns the written paths and, per plot not drawn, why."""
    try:
        _pyplot()
    except ImportError:
        return [], {"every plot": "matplotlib is not installed (pip install matplotlib)"}
    written: list[Path] = []
    not_drawn: dict[str, str] = {}
    replaced: list[str] = []  # the other form of a plot drawn in one form: removed, not listed
    for family in dict.fromkeys([*FAMILIES, *results.families()]):
        name, bars = f"time_vs_size_{family}.png", f"time_at_one_size_{family}.png"
        sizes = results.sizes(family)
        if len(sizes) > 1:
            _plot_time_vs_size(results, family, report_dir / name, written)
            replaced.append(bars)
        elif sizes:
            _plot_time_at_one_size(results, family, report_dir / bars, written)
            not_drawn[name] = f"one size measured ({size_text(family, sizes[0])}): its times are bars in {bars}"
        else:
            not_drawn[name] = f"no {family} measurements in the JSON"
            replaced.append(bars)
    with_nodes = [f for f in ("scalar_chain", "mlp") if any(results.nodes(f, s) for s in results.sizes(f))]
    if with_nodes:
        _plot_cost_per_node(results, with_nodes, report_dir / "cost_per_node.png", written)
    else:
        not_drawn["cost_per_node.png"] = "no scalar_chain or mlp measurement with a node count"
    bars_by_backend: dict[str, dict[str, float]] = {b: {} for b in BACKENDS}  # fixes the bar order within a group
    for family in results.families():
        for size in results.sizes(family):
            for backend in results.backends(family):
                value = backward_over_forward(results, family, size, backend)
                if value is not None:
                    bars_by_backend.setdefault(backend, {})[f"{family} {size}"] = value
    bars_by_backend = {backend: values for backend, values in bars_by_backend.items() if values}
    if bars_by_backend:
        _plot_backward_forward(bars_by_backend, report_dir / "backward_forward_ratio.png", written)
    else:
        not_drawn["backward_forward_ratio.png"] = "no backend has both forward and forward+backward at one size"
    crossovers = [c for c in jit_crossovers(results) if c.compile_seconds is not None]
    if crossovers:
        _plot_jit_crossover(crossovers, report_dir / "jit_crossover.png", written)
    else:
        not_drawn["jit_crossover.png"] = f"no size has {OURS} and {JIT} forward+backward with compile_seconds"
    for name in [*not_drawn, *replaced]:
        (report_dir / name).unlink(missing_ok=True)  # a plot left from an earlier run would contradict report.md
    return written, not_drawn
