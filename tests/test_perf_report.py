"""The performance report: what `report.md` states and which plots it draws from a
pytest-benchmark JSON of the `benchmarks/` suite.

The benchmark JSON is built two ways: by a cost model written out below in the documented
structure (so that the numbers, and which targets pass, are under the test's control), and by
running a real, tiny pytest-benchmark session that labels its benchmarks the way the suite
does (so that the report reads what pytest-benchmark actually writes). Expected values are
always computed here from the JSON itself, never typed in.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from benchmarks.report import (
    format_seconds,
    jit_crossovers,
    load_results,
    main,
    render_report,
    write_performance_report,
)

REPO = Path(__file__).resolve().parents[1]
FAMILY_SIZES = {"scalar_chain": (10, 100, 1000, 10000), "mlp": (8, 64, 256, 512), "audit_graphs": (1, 10)}
SIZE_SYMBOLS = {"scalar_chain": "N", "mlp": "width", "audit_graphs": "K"}  # as report.md names a size
BACKENDS = ("autodiff", "notebook", "torch", "jax", "jax-jit")
PASSES = ("forward", "forward+backward")
ALL_PLOTS = {
    "time_vs_size_scalar_chain.png",
    "time_vs_size_mlp.png",
    "time_vs_size_audit_graphs.png",
    "cost_per_node.png",
    "backward_forward_ratio.png",
    "jit_crossover.png",
}

# Seconds per call: fixed dispatch cost, per op node, per multiply-add of an mlp layer. The jit
# has the largest fixed cost, so it loses on the smallest graphs and wins on the large ones.
COSTS = {
    "autodiff": (2e-6, 0.6e-6, 1.2e-9),
    "notebook": (1e-6, 4e-6, 0.0),
    "torch": (15e-6, 6e-6, 1.0e-9),
    "jax": (30e-6, 20e-6, 1.0e-9),
    "jax-jit": (20e-6, 0.02e-6, 0.5e-9),
}
BACKWARD_FACTOR = {"forward": 1.0, "forward+backward": 2.6}


def graph_shape(family: str, size: int) -> tuple[int, int]:
    """(op nodes, multiply-adds) of one evaluation, as the suite builds its graphs."""
    if family == "scalar_chain":
        return 2 * size, 0
    if family == "mlp":
        return 4 * 3 + 2, 4 * 64 * size * size  # depth 4 of (matmul, add, sigmoid), loss; batch 64
    return 25 * size, 0


def benchmark_entry(family: str, size: int, backend: str, pass_name: str, rng) -> dict:
    fixed, per_node, per_madd = COSTS[backend]
    nodes, madds = graph_shape(family, size)
    typical = (fixed + per_node * nodes + per_madd * madds) * BACKWARD_FACTOR[pass_name]
    data = list(typical * rng.lognormal(0.0, 0.05, size=7))
    info = {"family": family, "size": size, "nodes": nodes, "backend": backend, "pass": pass_name}
    info["threads"] = {"blas": 1, "torch": 1}
    if backend == "jax-jit":
        info["compile_seconds"] = 0.05 + 2e-5 * nodes
    name = f"test_{family}[{backend}-{size}-{pass_name}]"
    return {
        "group": f"{family}/{size}/{pass_name}",
        "name": name,
        "fullname": f"benchmarks/test_speed.py::{name}",
        "params": {"backend": backend, "size": size, "pass_name": pass_name},
        "param": f"{backend}-{size}-{pass_name}",
        "extra_info": info,
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0},
        "stats": {
            "min": min(data),
            "max": max(data),
            "mean": statistics.mean(data),
            "stddev": statistics.stdev(data),
            "rounds": len(data),
            "median": statistics.median(data),
            "iterations": 1,
            "ops": 1 / statistics.mean(data),
            "data": data,
        },
    }


def benchmark_document(keep=lambda family, size, backend, pass_name: True) -> dict:
    """A pytest-benchmark JSON of the suite; `keep` drops benchmarks as a skip would."""
    rng = np.random.default_rng(0)
    entries = [
        benchmark_entry(family, size, backend, pass_name, rng)
        for family, sizes in FAMILY_SIZES.items()
        for size in sizes
        for backend in BACKENDS
        for pass_name in PASSES
        if (backend != "notebook" or family == "scalar_chain") and keep(family, size, backend, pass_name)
    ]
    return {
        "machine_info": {
            "node": "bench-host",
            "processor": "x86_64",
            "machine": "x86_64",
            "python_version": "3.11.7",
            "cpu": {"brand_raw": "Example CPU @ 2.60GHz", "count": 8, "arch": "X86_64", "bits": 64},
            "versions": {"numpy": "2.4.6", "torch": "2.13.0", "jax": "0.10.2", "python": "3.11.7"},
            "threads": {"blas": 1, "torch": 1},
            "bench_sweep": "full",
        },
        "commit_info": {"id": "0123456789abcdef0123", "dirty": True, "project": "main", "branch": "perf"},
        "benchmarks": entries,
        "datetime": "2026-11-26T05:28:46.405373+00:00",
        "version": "5.2.0",
    }


def medians_in(document: dict) -> dict[tuple, float]:
    """(family, size, pass, backend) -> median, read straight from the JSON."""
    medians = {}
    for entry in document["benchmarks"]:
        info = entry["extra_info"]
        medians[(info["family"], info["size"], info["pass"], info["backend"])] = entry["stats"]["median"]
    return medians


def write_report(document: dict, directory: Path) -> tuple[list[Path], str]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "benchmarks.json"
    path.write_text(json.dumps(document))
    written = write_performance_report(path, directory / "report")
    return written, (directory / "report" / "report.md").read_text(encoding="utf-8")


def target_row(report: str, claim_start: str) -> list[str]:
    rows = [line for line in report.splitlines() if line.startswith(f"| {claim_start}")]
    assert len(rows) == 1, f"one target row starting {claim_start!r}, got {rows}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def table_after(report: str, heading: str) -> list[list[str]]:
    """The markdown table under `heading`, as rows of cells (header first, separator dropped)."""
    lines = report.splitlines()
    start = lines.index(heading) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0], *rows[2:]]


def write_report_keeping_figures(document: dict, directory: Path) -> tuple[list[Path], str, dict]:
    """write_report, and every figure the report saved (by file name), left open to measure."""
    from matplotlib.figure import Figure

    figures = {}
    save = Figure.savefig

    def save_and_keep(figure, path, *args, **kwargs):
        save(figure, path, *args, **kwargs)
        figures[Path(path).name] = figure

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", save_and_keep)
        written, report = write_report(document, directory)
    return written, report, figures


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    document = benchmark_document()
    return document, *write_report_keeping_figures(document, tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def full(full_run):
    document, written, report, _ = full_run
    return document, written, report


# Why the quick sweep stops jax-jit at N=100, as benchmarks/conftest.py records it in the JSON.
JIT_STOP_REASON = "only in `--bench-sweep full` (compiling the 2,000-op chain takes ~8 s)"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """What `autodiff-audit bench --quick` measures: no jax-jit beyond N=100, one audit_graphs size."""

    def measured(family, size, backend, pass_name):
        if family == "scalar_chain":
            return size <= (100 if backend == "jax-jit" else 1000)
        return size <= 256 if family == "mlp" else size == 10

    document = benchmark_document(measured)
    document["machine_info"]["bench_sweep"] = "quick"
    document["machine_info"]["not_measured"] = [
        {"family": "scalar_chain", "size": 1000, "backend": "jax-jit", "pass": pass_name, "reason": JIT_STOP_REASON}
        for pass_name in PASSES
    ]
    return document, *write_report_keeping_figures(document, tmp_path_factory.mktemp("quick"))


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """Only the two node engines on scalar chains up to N=1000, forward+backward only."""
    document = benchmark_document(
        lambda family, size, backend, pass_name: (
            family == "scalar_chain"
            and size <= 1000
            and backend in ("autodiff", "notebook")
            and pass_name == "forward+backward"
        )
    )
    directory = tmp_path_factory.mktemp("sparse")
    (directory / "report").mkdir()
    (directory / "report" / "jit_crossover.png").write_bytes(b"\x89PNG from an earlier run")
    written, report = write_report(document, directory)
    return document, written, report


# ---- machine, versions, threads --------------------------------------------------------------


def test_report_names_the_machine_versions_threads_date_and_commit(full):
    _, _, report = full
    assert "- machine: bench-host, x86_64" in report
    assert "- cpu: Example CPU @ 2.60GHz, 8 cores" in report
    assert "- versions: python 3.11.7, numpy 2.4.6, torch 2.13.0, jax 0.10.2" in report
    assert "- threads: blas=1, torch=1" in report
    assert "- date: 2026-11-26T05:28:46" in report
    assert "- commit: 0123456789ab (dirty) on perf" in report
    assert "- sweep: full" in report


# ---- tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILY_SIZES)
@pytest.mark.parametrize("pass_name", PASSES)
def test_each_family_has_a_table_per_pass_with_a_column_per_backend_in_the_data(full, family, pass_name):
    document, _, report = full
    medians = medians_in(document)
    backends = [b for b in BACKENDS if any(k[0] == family and k[3] == b for k in medians)]
    header, *rows = table_after(report, f"### {family}, {pass_name} (median time)")
    assert header[2 : 2 + len(backends)] == backends
    assert header[2 + len(backends) :] == [f"{b} / autodiff" for b in backends if b != "autodiff"]
    assert [int(row[0]) for row in rows] == list(FAMILY_SIZES[family])
    for row in rows:
        size = int(row[0])
        assert row[1] == str(graph_shape(family, size)[0])
        ours = medians[(family, size, pass_name, "autodiff")]
        for backend, cell in zip(backends, row[2:]):
            assert cell == format_seconds(medians[(family, size, pass_name, backend)])
        for backend, cell in zip(backends[1:], row[2 + len(backends) :]):
            assert cell == f"{medians[(family, size, pass_name, backend)] / ours:.3g}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.5e-9, "2.5 ns"), (3.21e-7, "321 ns"), (4.2e-5, "42 µs"), (0.0009997, "1 ms"), (0.25, "250 ms"), (3.0, "3 s")],
)
def test_times_are_written_in_the_unit_that_keeps_them_readable(seconds, text):
    assert format_seconds(seconds) == text


def test_entries_that_cannot_be_placed_are_listed_as_not_used_instead_of_guessed(tmp_path):
    document = benchmark_document(lambda family, size, backend, pass_name: family == "scalar_chain" and size == 10)
    unlabelled = dict(document["benchmarks"][0], group=None, extra_info={}, fullname="bench.py::test_unlabelled")
    repeated = dict(document["benchmarks"][1], fullname="bench.py::test_repeated")
    document["benchmarks"] += [unlabelled, repeated]
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(document))
    results = load_results(path)
    assert len(results.measurements) == len(document["benchmarks"]) - 2
    report = render_report(results, [], {})
    assert "2 benchmark entries were not used:" in report
    assert "- bench.py::test_unlabelled: no family/size/pass/backend" in report
    assert "- bench.py::test_repeated: a second scalar_chain/10/" in report


# ---- targets ---------------------------------------------------------------------------------


def expected_targets(medians: dict) -> dict[str, tuple[float, float]]:
    """Claim prefix in report.md -> (ratio from the medians, limit)."""
    fb = "forward+backward"

    def bwd_over_fwd(family, size):
        forward = medians[(family, size, "forward", "autodiff")]
        return (medians[(family, size, fb, "autodiff")] - forward) / forward

    return {
        "autodiff / torch, scalar_chain N=1000": (
            medians[("scalar_chain", 1000, fb, "autodiff")] / medians[("scalar_chain", 1000, fb, "torch")],
            0.15,
        ),
        "autodiff / notebook, scalar_chain N=1000": (
            medians[("scalar_chain", 1000, fb, "autodiff")] / medians[("scalar_chain", 1000, fb, "notebook")],
            0.25,
        ),
        "autodiff / torch, mlp width=256": (
            medians[("mlp", 256, fb, "autodiff")] / medians[("mlp", 256, fb, "torch")],
            1.10,
        ),
        "linearity: autodiff scalar_chain N=10000 / N=1000": (
            medians[("scalar_chain", 10000, fb, "autodiff")] / medians[("scalar_chain", 1000, fb, "autodiff")],
            11.0,
        ),
        "backward / forward: autodiff scalar_chain N=1000": (bwd_over_fwd("scalar_chain", 1000), 3.0),
        "backward / forward: autodiff mlp width=256": (bwd_over_fwd("mlp", 256), 3.0),
    }


@pytest.mark.parametrize("claim", list(expected_targets(medians_in(benchmark_document()))))
def test_each_target_is_the_ratio_of_the_medians_with_its_verdict(full, claim):
    document, _, report = full
    value, limit = expected_targets(medians_in(document))[claim]
    row = target_row(report, claim)
    assert row[1] == f"{value:.3g}"
    assert row[3] == f"≤ {limit:g}"
    assert row[4] == ("PASS" if value <= limit else "MISS")


def test_a_target_shows_the_medians_it_came_from(full):
    document, _, report = full
    medians = medians_in(document)
    row = target_row(report, "autodiff / torch, scalar_chain N=1000")
    ours, torch = (medians[("scalar_chain", 1000, "forward+backward", b)] for b in ("autodiff", "torch"))
    assert row[2] == f"autodiff {format_seconds(ours)}, torch {format_seconds(torch)}"


def test_a_target_without_its_data_is_not_measured_and_gets_no_number(sparse):
    _, _, report = sparse
    for claim in ("autodiff / torch, scalar_chain N=1000", "autodiff / torch, mlp width=256"):
        row = target_row(report, claim)
        assert row[1] == "not measured"
        assert row[4] == "not measured"
        assert row[2] == ("missing: torch" if "scalar_chain" in claim else "missing: autodiff, torch")
    for claim in ("backward / forward: autodiff scalar_chain", "backward / forward: autodiff mlp"):
        row = target_row(report, claim)
        assert row[4] == "not measured"
        assert row[2].startswith("missing:") and "forward" in row[2]


def test_linearity_uses_100_to_1000_when_the_10000_chain_was_not_run(sparse):
    document, _, report = sparse
    medians = medians_in(document)
    row = target_row(report, "linearity: autodiff scalar_chain N=1000 / N=100")
    fb = "forward+backward"
    expected = medians[("scalar_chain", 1000, fb, "autodiff")] / medians[("scalar_chain", 100, fb, "autodiff")]
    assert row[1] == f"{expected:.3g}"


def test_the_notebook_target_is_measured_when_only_the_node_engines_ran(sparse):
    document, _, report = sparse
    medians = medians_in(document)
    fb = "forward+backward"
    expected = medians[("scalar_chain", 1000, fb, "autodiff")] / medians[("scalar_chain", 1000, fb, "notebook")]
    assert target_row(report, "autodiff / notebook, scalar_chain N=1000")[1] == f"{expected:.3g}"


# ---- JIT crossover ---------------------------------------------------------------------------


def test_crossover_is_the_compile_time_over_the_per_call_saving(full, tmp_path):
    document, _, report = full
    medians = medians_in(document)
    compile_seconds = {
        (e["extra_info"]["family"], e["extra_info"]["size"]): e["extra_info"]["compile_seconds"]
        for e in document["benchmarks"]
        if e["extra_info"]["backend"] == "jax-jit" and e["extra_info"]["pass"] == "forward+backward"
    }
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(document))
    crossovers = {(c.family, c.size): c for c in jit_crossovers(load_results(path))}
    assert set(crossovers) == set(compile_seconds)
    faster_somewhere = never_faster = 0
    for (family, size), crossover in crossovers.items():
        t_autodiff = medians[(family, size, "forward+backward", "autodiff")]
        t_jit = medians[(family, size, "forward+backward", "jax-jit")]
        line = next(
            line for line in report.splitlines() if line.startswith(f"- {family} {SIZE_SYMBOLS[family]}={size}:")
        )
        if t_autodiff > t_jit:
            expected = compile_seconds[(family, size)] / (t_autodiff - t_jit)
            assert crossover.n_star == pytest.approx(expected, rel=1e-12)
            assert f"n* = {expected:.3g} evaluations" in line
            faster_somewhere += 1
        else:
            assert crossover.n_star is None
            assert "jit never faster" in line
            never_faster += 1
    assert faster_somewhere and never_faster, "the cost model is meant to show both cases"


# ---- plots -----------------------------------------------------------------------------------


def test_every_plot_with_data_is_written_as_a_png_and_returned(full):
    _, written, _ = full
    report_dir = written[0].parent
    assert [p.name for p in written[:1]] == ["report.md"]
    assert {p.name for p in written[1:]} == ALL_PLOTS
    assert {p.name for p in report_dir.iterdir()} == {"report.md", *ALL_PLOTS}
    for path in written[1:]:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_every_written_plot_is_shown_in_the_report(full):
    _, written, report = full
    for path in written[1:]:
        assert f"]({path.name})" in report


def test_plots_without_data_are_not_written_and_the_report_says_why(sparse):
    _, written, report = sparse
    drawn = {p.name for p in written[1:]}
    assert drawn == {"time_vs_size_scalar_chain.png", "cost_per_node.png"}
    for name in ALL_PLOTS - drawn:
        line = next(line for line in report.splitlines() if f"`{name}`" in line)
        assert line.startswith("- not drawn:") and len(line) > len(f"- not drawn: `{name}`: ") + 10


def test_a_plot_left_by_an_earlier_run_is_removed_when_it_cannot_be_drawn(sparse):
    _, written, _ = sparse
    assert not (written[0].parent / "jit_crossover.png").exists()


def test_without_matplotlib_the_report_is_still_written_and_says_why_there_are_no_plots(tmp_path, monkeypatch):
    def no_matplotlib():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr("benchmarks.plots._pyplot", no_matplotlib)
    written, report = write_report(benchmark_document(lambda *_: False), tmp_path)
    assert [p.name for p in written] == ["report.md"]
    assert "- not drawn: `every plot`: matplotlib is not installed" in report


# ---- the plots can be read -------------------------------------------------------------------


def overlap(a, b) -> bool:
    """Whether two window extents share more than a pixel's width in both directions."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1


def inside(inner, outer) -> bool:
    """Whether a window extent lies within another, to a pixel."""
    return min(inner.x0 - outer.x0, inner.y0 - outer.y0, outer.x1 - inner.x1, outer.y1 - inner.y1) >= -1


def layout_problems(figure) -> list[str]:
    """Titles cut by the figure's edge, legends cut by it, and legends over a plotting area."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)  # pyplot.close left the figure without its canvas
    canvas.draw()  # lays the figure out as savefig did
    renderer = canvas.get_renderer()
    axes = [ax for ax in figure.axes if ax.get_visible()]
    titles = [ax.title for ax in axes] + [t for t in [getattr(figure, "_suptitle", None)] if t is not None]
    problems = [
        f"title {title.get_text()!r} is cut by the figure's edge"
        for title in titles
        if title.get_text() and not inside(title.get_window_extent(renderer), figure.bbox)
    ]
    legends = [*figure.legends, *(ax.get_legend() for ax in axes if ax.get_legend())]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        first = legend.get_texts()[0].get_text() if legend.get_texts() else ""
        if not inside(box, figure.bbox):
            problems.append(f"legend starting {first!r} is cut by the figure's edge")
        for ax in axes:
            if overlap(box, ax.get_window_extent(renderer)):
                problems.append(f"legend starting {first!r} lies over the plotting area of {ax.get_title()!r}")
    return problems


@pytest.mark.parametrize("run", ["full_run", "quick_run"])
def test_no_title_is_cut_and_no_legend_lies_over_a_plot(request, run):
    _, written, _, figures = request.getfixturevalue(run)
    assert set(figures) == {p.name for p in written[1:]}
    problems = {name: layout_problems(figure) for name, figure in figures.items()}
    assert not {name: found for name, found in problems.items() if found}


def test_the_legend_says_which_line_style_is_which_pass(full_run):
    _, _, _, figures = full_run
    for family in ("scalar_chain", "mlp", "audit_graphs"):
        (ax,) = figures[f"time_vs_size_{family}.png"].axes
        entries = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
        for pass_name, style, word in (("forward+backward", "-", "solid"), ("forward", "--", "dashed")):
            (label,) = [text for text in entries if text.startswith(pass_name + " ") and word in text]
            assert entries[label].get_linestyle() == style and entries[label].get_marker() in ("None", "", None)
            drawn = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
            assert any(line.get_linestyle() == style for line in drawn)


def test_a_family_measured_at_one_size_gets_bars_not_a_plot_against_size(quick_run):
    _, written, report, figures = quick_run
    names = {p.name for p in written}
    assert "time_vs_size_audit_graphs.png" not in names and "time_at_one_size_audit_graphs.png" in names
    assert not (written[0].parent / "time_vs_size_audit_graphs.png").exists()
    assert "- not drawn: `time_vs_size_audit_graphs.png`: one size measured (K=10)" in report
    (ax,) = figures["time_at_one_size_audit_graphs.png"].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["autodiff", "torch", "jax", "jax-jit"]
    assert len(ax.patches) == 8  # forward and forward+backward of each backend


def test_a_curve_that_stops_before_the_largest_size_is_marked_with_the_reason(quick_run):
    document, _, report, figures = quick_run
    medians = medians_in(document)
    note = f"jax-jit stops at N=100; N=1000: {JIT_STOP_REASON}"
    assert f"- scalar_chain: {note}" in report
    for name, pass_names in (("time_vs_size_scalar_chain.png", PASSES), ("cost_per_node.png", ("forward+backward",))):
        ax = figures[name].axes[0]
        legend = " ".join(t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts())
        assert note in legend or note.replace("jax-jit", "jax-jit forward+backward") in legend
        markers = [line for line in ax.get_lines() if line.get_marker() == "s" and len(line.get_xdata()) == 1]
        per_node = name == "cost_per_node.png"
        expected = {
            (200, medians[("scalar_chain", 100, p, "jax-jit")] / 200) if per_node
            else (100, medians[("scalar_chain", 100, p, "jax-jit")])
            for p in pass_names
        }  # fmt: skip
        assert {(line.get_xdata()[0], line.get_ydata()[0]) for line in markers} == expected


def test_the_benchmark_json_records_why_the_quick_sweep_leaves_jax_jit_out(tmp_path):
    """The reason the plots give comes from the suite: a real session writes it in the JSON."""
    json_path = tmp_path / "benchmark.json"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "benchmarks/test_bench.py"]
    command += ["-k", "test_bench and scalar_chain-10-autodiff-forward", "--benchmark-enable"]
    command += [f"--benchmark-json={json_path}", "--benchmark-max-time=0.01", "--benchmark-storage", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = load_results(json_path)
    for pass_name in PASSES:  # the reason is benchmarks/test_bench.py's FULL_ONLY_RUNS
        reason = results.not_measured[("scalar_chain", 1000, pass_name, "jax-jit")]
        assert reason.startswith("only in `--bench-sweep full` (compiling the 2,000-op chain takes ")
    assert "only in `--bench-sweep full`" in results.not_measured[("scalar_chain", 10000, "forward", "autodiff")]


# ---- a real pytest-benchmark session ---------------------------------------------------------

SESSION_CONFTEST = """
import platform

def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["versions"] = {"numpy": "test", "python": platform.python_version()}
    machine_info["threads"] = {"openblas 0.3.31": 1, "torch": 1, "xla": "not limited (XLA_FLAGS unset)"}
"""

SESSION_MODULE = """
import time
import pytest

CASES = [
    (family, size, backend, pass_name)
    for family, sizes, backends in [
        ("scalar_chain", (10, 100), ("autodiff", "notebook", "torch", "jax", "jax-jit")),
        ("mlp", (8,), ("autodiff", "torch", "jax-jit")),
    ]
    for size in sizes
    for backend in backends
    for pass_name in ("forward", "forward+backward")
]

def work(n):
    return sum(range(n))

@pytest.mark.parametrize(("family", "size", "backend", "pass_name"), CASES)
def test_speed(benchmark, family, size, backend, pass_name):
    benchmark.group = f"{family}/{size}/{pass_name}"
    benchmark.extra_info.update(
        {"family": family, "size": size, "nodes": 2 * size, "backend": backend, "pass": pass_name}
    )
    benchmark.extra_info["threads"] = {"openblas 0.3.31": 1, "torch": 2 if family == "mlp" else 1}
    if backend == "jax-jit":
        start = time.perf_counter()
        work(1000)
        benchmark.extra_info["compile_seconds"] = time.perf_counter() - start
    n = size * (2 if pass_name == "forward+backward" else 1) * (1 + len(backend))
    benchmark.pedantic(work, args=(n,), rounds=3, iterations=2)
"""


@pytest.fixture(scope="module")
def real_session(tmp_path_factory):
    directory = tmp_path_factory.mktemp("session")
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "conftest.py").write_text(textwrap.dedent(SESSION_CONFTEST))
    (directory / "bench_speed.py").write_text(textwrap.dedent(SESSION_MODULE))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench_speed.py"]
    command += ["--benchmark-json", "benchmarks.json"]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((directory / "benchmarks.json").read_text())
    assert main([str(directory / "benchmarks.json"), str(directory / "report")]) == 0
    return document, (directory / "report" / "report.md").read_text(encoding="utf-8")


def test_a_real_pytest_benchmark_json_gives_tables_of_its_medians(real_session):
    document, report = real_session
    medians = medians_in(document)
    header, *rows = table_after(report, "### scalar_chain, forward+backward (median time)")
    assert header[2:7] == list(BACKENDS)
    for row in rows:
        size = int(row[0])
        ours = medians[("scalar_chain", size, "forward+backward", "autodiff")]
        torch = medians[("scalar_chain", size, "forward+backward", "torch")]
        assert row[header.index("torch / autodiff")] == f"{torch / ours:.3g}"
    # every thread count seen, from the machine info and from each benchmark
    assert "- threads: openblas 0.3.31=1, torch=1/2, xla=not limited (XLA_FLAGS unset)" in report
    assert f"python {document['machine_info']['python_version']}, numpy test" in report


# ---- command line ----------------------------------------------------------------------------


def report_command(json_path: Path, report_dir: Path) -> subprocess.CompletedProcess:
    """The report's command line as `autodiff-audit bench` runs it: from the checkout's root."""
    command = [sys.executable, "-m", "benchmarks.report", str(json_path), str(report_dir)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_command_line_writes_the_report_and_prints_one_line_naming_what_it_wrote(tmp_path):
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(benchmark_document(lambda f, s, b, p: f == "scalar_chain" and s <= 100)))
    done = report_command(path, tmp_path / "report")
    written = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert done.returncode == 0, done.stderr
    assert "report.md" in written and any(name.endswith(".png") for name in written)
    assert done.stdout == f"report: {path} and {len(written)} files in {tmp_path / 'report'}\n"
    assert "Traceback" not in done.stderr


def test_a_report_directory_that_cannot_be_written_is_one_line_on_stderr_and_exit_2(tmp_path):
    path, blocked = tmp_path / "benchmark.json", tmp_path / "a file"
    path.write_text(json.dumps(benchmark_document(lambda f, s, b, p: f == "scalar_chain" and s == 10)))
    blocked.write_text("")
    done = report_command(path, blocked / "report")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("benchmarks.report: error: cannot write to") and "Traceback" not in done.stderr


def test_a_missing_json_file_is_one_line_on_stderr_and_exit_2(tmp_path):
    done = report_command(tmp_path / "missing.json", tmp_path / "out")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("benchmarks.report: error: ") and "missing.json" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", '{"machine_info": {}}', "\udcff"])
def test_an_invalid_json_file_is_one_line_on_stderr_and_exit_2(tmp_path, capsys, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert main([str(path), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "bad.json" in error
    assert not (tmp_path / "out").exists()
