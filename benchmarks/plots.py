"""Performance plots (matplotlib, Agg backend): time against size, cost per node, the
backward/forward ratio and the JIT crossover."""

from __future__ import annotations

import math
from pathlib import Path

from .results import (
    BACKENDS,
    BACKWARD_OVER_FORWARD_LIMIT,
    FAMILIES,
    JIT,
    OURS,
    SIZE_LABELS,
    Crossover,
    Results,
    backward_over_forward,
    jit_crossovers,
    size_text,
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, same output on CI
    import matplotlib.pyplot as plt

    return plt


def _color(backend: str):
    # A backend keeps its colour in every plot; unknown ones get a stable one from their name.
    index = BACKENDS.index(backend) if backend in BACKENDS else len(BACKENDS) + sum(map(ord, backend)) % 5
    return f"C{index % 10}"


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=110)  # each figure is made with layout="constrained"
    _pyplot().close(fig)
    written.append(path)


def _plot_time_vs_size(results: Results, family: str, path: Path, written: list[Path]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for backend in results.backends(family):
        for pass_name, style in (("forward+backward", "-"), ("forward", "--")):
            points = [(s, results.median(family, s, pass_name, backend)) for s in results.sizes(family)]
            points = [(s, t) for s, t in points if t is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, marker="o", color=_color(backend), label=f"{backend}, {pass_name}")
    ax.set(xscale="log", yscale="log", xlabel=SIZE_LABELS.get(family, "size"), ylabel="median time per call (s)")
    ax.set_title(f"{family}: median time against size (solid forward+backward, dashed forward)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path, written)


def _plot_cost_per_node(results: Results, families: list[str], path: Path, written: list[Path]) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 4.5), squeeze=False, layout="constrained")
    for ax, family in zip(axes[0], families):
        node_counts = {results.nodes(family, s) for s in results.sizes(family)} - {None}
        # An mlp has the same op nodes at every width: against nodes its points would stack on one x.
        by_size = len(node_counts) == 1 and len(results.sizes(family)) > 1
        for backend in results.backends(family):
            measured = [results.get(family, s, "forward+backward", backend) for s in results.sizes(family)]
            points = [(m.size if by_size else m.nodes, m.median / m.nodes) for m in measured if m and m.nodes]
            if points:
                ax.plot(*zip(*points), marker="o", color=_color(backend), label=backend)
        xlabel = f"{SIZE_LABELS.get(family, 'size')} ({node_counts.pop()} op nodes at every size)" if by_size else None
        ax.set(xscale="log", yscale="log", xlabel=xlabel or "op nodes in the graph", ylabel="median time / nodes (s)")
        ax.set_title(f"{family}: forward+backward cost per node")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    _save(fig, path, written)


def _plot_backward_forward(bars: dict[str, dict[str, float]], path: Path, written: list[Path]) -> None:
    """Grouped bars: one group per "family size", one bar per backend measured there."""
    plt = _pyplot()
    categories = list(dict.fromkeys(c for per_backend in bars.values() for c in per_backend))
    fig, ax = plt.subplots(figsize=(min(16, max(7, 0.2 * len(categories) * len(bars))), 4.5), layout="constrained")
    width = 0.8 / len(bars)
    for i, (backend, values) in enumerate(bars.items()):
        xs = [j + i * width for j, c in enumerate(categories) if c in values]
        ax.bar(xs, [values[c] for c in categories if c in values], width, color=_color(backend), label=backend)
    ax.axhline(BACKWARD_OVER_FORWARD_LIMIT, color="black", linestyle=":", label=f"target for {OURS}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))], categories, rotation=45, ha="right")
    highest = max([BACKWARD_OVER_FORWARD_LIMIT, *(v for values in bars.values() for v in values.values())])
    ax.set_ylim(top=highest * 1.3)  # headroom for the legend above the bars
    ax.set(xlabel="family and size", ylabel="(fwd+bwd - fwd) / fwd")
    ax.set_title("Backward pass cost in units of the forward pass")
    ax.legend(fontsize=8, ncols=len(bars) + 1, loc="upper center")
    _save(fig, path, written)


def _plot_jit_crossover(crossovers: list[Crossover], path: Path, written: list[Path]) -> None:
    import numpy as np

    plt = _pyplot()
    columns = min(4, len(crossovers))
    rows = math.ceil(len(crossovers) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False, layout="constrained")
    n = np.logspace(0, 6, 61)
    for ax, c in zip(axes.flat, crossovers):
        assert c.compile_seconds is not None  # draw_plots passes only the crossovers with a compile time
        ax.plot(n, n * c.t_autodiff, color=_color(OURS), label=f"{OURS}: n t")
        ax.plot(n, c.compile_seconds + n * c.t_jit, color=_color(JIT), label=f"{JIT}: compile + n t")
        if c.n_star is not None and 1 <= c.n_star <= 1e6:
            ax.axvline(c.n_star, color="gray", linestyle=":")
            ax.plot([c.n_star], [c.n_star * c.t_autodiff], "ko", label=f"n* = {c.n_star:.3g}")
        else:
            note = "jit never faster" if c.n_star is None else f"n* = {c.n_star:.3g}: beyond the axis"
            note = "jit faster from the first call" if c.n_star is not None and c.n_star < 1 else note
            ax.text(0.05, 0.9, note, transform=ax.transAxes)
        ax.set(xscale="log", yscale="log", xlabel="evaluations n", ylabel="total time (s)")
        ax.minorticks_off()  # 10+ small log-log panels: minor ticks are clutter, and slow to lay out
        ax.set_title(f"{c.family} {size_text(c.family, c.size)}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(crossovers) :]:
        ax.set_visible(False)
    fig.suptitle(f"When does compiling pay? {OURS} against {JIT} (compile included), forward+backward")
    _save(fig, path, written)


def draw_plots(results: Results, report_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """Writes each plot that has data; returns the written paths and, per plot not drawn, why."""
    try:
        _pyplot()
    except ImportError:
        return [], {"every plot": "matplotlib is not installed (pip install matplotlib)"}
    written: list[Path] = []
    not_drawn: dict[str, str] = {}
    for family in dict.fromkeys([*FAMILIES, *results.families()]):
        name = f"time_vs_size_{family}.png"
        if family in results.families():
            _plot_time_vs_size(results, family, report_dir / name, written)
        else:
            not_drawn[name] = f"no {family} measurements in the JSON"
    with_nodes = [f for f in ("scalar_chain", "mlp") if any(results.nodes(f, s) for s in results.sizes(f))]
    if with_nodes:
        _plot_cost_per_node(results, with_nodes, report_dir / "cost_per_node.png", written)
    else:
        not_drawn["cost_per_node.png"] = "no scalar_chain or mlp measurement with a node count"
    bars: dict[str, dict[str, float]] = {b: {} for b in BACKENDS}  # fixes the bar order within a group
    for family in results.families():
        for size in results.sizes(family):
            for backend in results.backends(family):
                value = backward_over_forward(results, family, size, backend)
                if value is not None:
                    bars.setdefault(backend, {})[f"{family} {size}"] = value
    bars = {backend: values for backend, values in bars.items() if values}
    if bars:
        _plot_backward_forward(bars, report_dir / "backward_forward_ratio.png", written)
    else:
        not_drawn["backward_forward_ratio.png"] = "no backend has both forward and forward+backward at one size"
    crossovers = [c for c in jit_crossovers(results) if c.compile_seconds is not None]
    if crossovers:
        _plot_jit_crossover(crossovers, report_dir / "jit_crossover.png", written)
    else:
        not_drawn["jit_crossover.png"] = f"no size has {OURS} and {JIT} forward+backward with compile_seconds"
    for name in not_drawn:
        (report_dir / name).unlink(missing_ok=True)  # a plot left from an earlier run would contradict report.md
    return written, not_drawn
