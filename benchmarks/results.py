"""Performance results: the medians of a pytest-benchmark JSON of `benchmarks/`, the speed
targets computed from them, and the JIT crossover. Read by report.py and plots.py.

It reads the JSON alone: nothing here imports the engines, torch or JAX."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def plain_text(value) -> str:
    return str(value) if isinstance(value, str | int | float | type(None)) else json.dumps(value, sort_keys=True)


OURS = "autodiff"
JIT = "jax-jit"
PASSES = ("forward", "forward+backward")
FAMILIES = ("scalar_chain", "mlp", "audit_graphs")
BACKENDS = (OURS, "notebook", "torch", "jax", JIT)
SIZE_LABELS = {"scalar_chain": "N (steps)", "mlp": "width W", "audit_graphs": "K (graphs)"}
SIZE_SYMBOLS = {"scalar_chain": "N", "mlp": "width", "audit_graphs": "K"}
BACKWARD_OVER_FORWARD_LIMIT = 3.0
REGRESSION_GATE = (
    "`pytest benchmarks --benchmark-enable --benchmark-autosave` records a baseline; "
    "`pytest benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:10%` "
    "then fails when a median is more than 10% slower than that baseline."
)


class BenchmarkFileError(ValueError):
    """The benchmark JSON cannot be read; the message is one line a user can act on."""


@dataclass(frozen=True)
class Measurement:
    family: str
    size: int
    pass_name: str
    backend: str
    median: float
    nodes: int | None = None
    compile_seconds: float | None = None


@dataclass
class Results:
    machine: dict
    commit: dict
    date: str | None
    measurements: dict[tuple[str, int, str, str], Measurement]
    threads: dict[str, set[str]] = field(default_factory=dict)  # per-benchmark thread counts, all values seen
    ignored: list[str] = field(default_factory=list)  # entries not used, and why
    # (family, size, pass, backend) -> why the suite did not measure it (machine_info["not_measured"])
    not_measured: dict[tuple[str, int, str, str], str] = field(default_factory=dict)

    def get(self, family: str, size: int, pass_name: str, backend: str) -> Measurement | None:
        return self.measurements.get((family, size, pass_name, backend))

    def median(self, family: str, size: int, pass_name: str, backend: str) -> float | None:
        found = self.get(family, size, pass_name, backend)
        return None if found is None else found.median

    def families(self) -> list[str]:
        present = {key[0] for key in self.measurements}
        return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))

    def sizes(self, family: str) -> list[int]:
        return sorted({key[1] for key in self.measurements if key[0] == family})

    def backends(self, family: str) -> list[str]:
        present = {key[3] for key in self.measurements if key[0] == family}
        return [b for b in BACKENDS if b in present] + sorted(present - set(BACKENDS))

    def why_not_measured(self, family: str, size: int, pass_name: str, backend: str) -> str | None:
        return self.not_measured.get((family, size, pass_name, backend))

    def nodes(self, family: str, size: int) -> int | None:
        counts = [m.nodes for k, m in self.measurements.items() if k[:2] == (family, size) and m.nodes]
        return counts[0] if counts else None


def _measurement(entry: dict) -> Measurement | str:
    """One benchmark entry, or the reason it cannot be used. extra_info is the source; the
    group "family/size/pass" and the `backend` parameter are fallbacks for entries without it."""
    info = as_dict(entry.get("extra_info"))
    group: Sequence[str | None] = str(entry.get("group") or "").split("/")
    group = group if len(group) == 3 else [None, None, None]
    family = info.get("family") or group[0]
    size = info.get("size") if info.get("size") is not None else group[1]
    pass_name = info.get("pass") or group[2]
    backend = info.get("backend") or as_dict(entry.get("params")).get("backend")
    median = as_dict(entry.get("stats")).get("median")
    name = entry.get("fullname") or entry.get("name") or "?"
    if not (family and pass_name and backend) or size is None:
        return f"{name}: no family/size/pass/backend in extra_info or group"
    if not isinstance(median, int | float) or not math.isfinite(median) or median < 0:
        return f"{name}: no usable median ({median!r})"
    try:
        size = int(size)
    except (TypeError, ValueError):
        return f"{name}: size {size!r} is not a number"
    compile_seconds = info.get("compile_seconds")
    return Measurement(
        family=str(family),
        size=size,
        pass_name=str(pass_name),
        backend=str(backend),
        median=float(median),
        nodes=int(info["nodes"]) if isinstance(info.get("nodes"), int | float) else None,
        compile_seconds=float(compile_seconds) if isinstance(compile_seconds, int | float) else None,
    )


def _not_measured(machine: dict) -> dict[tuple[str, int, str, str], str]:
    """machine_info["not_measured"] as benchmarks/conftest.py writes it: a list of
    {family, size, backend, pass, reason}, one per benchmark the session skipped or deselected."""
    found = {}
    entries = machine.get("not_measured")
    for entry in entries if isinstance(entries, list) else []:
        entry = as_dict(entry)
        family, size, backend, pass_name = (entry.get(k) for k in ("family", "size", "backend", "pass"))
        if isinstance(family, str) and isinstance(size, int) and isinstance(backend, str) and pass_name in PASSES:
            found[(family, size, pass_name, backend)] = plain_text(entry.get("reason") or "no reason given")
    return found


def load_results(path: str | Path) -> Results:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkFileError(f"{path}: cannot read: {error}") from None
    except json.JSONDecodeError as error:
        raise BenchmarkFileError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BenchmarkFileError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    machine = as_dict(data.get("machine_info"))
    results = Results(machine, as_dict(data.get("commit_info")), data.get("datetime"), {})
    results.not_measured = _not_measured(machine)
    for entry in data["benchmarks"]:
        found = _measurement(entry if isinstance(entry, dict) else {})
        if isinstance(found, str):
            results.ignored.append(found)
            continue
        key = (found.family, found.size, found.pass_name, found.backend)
        if key in results.measurements:
            results.ignored.append(f"{entry.get('fullname', '?')}: a second {'/'.join(map(str, key))}, first kept")
            continue
        results.measurements[key] = found
        for name, count in as_dict(as_dict(entry.get("extra_info")).get("threads")).items():
            results.threads.setdefault(name, set()).add(plain_text(count))
    return results


# ---- numbers ---------------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale * 0.9995:  # 999.7 µs rounds to "1 ms", not "1e+03 µs"
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def size_text(family: str, size: int) -> str:
    return f"{SIZE_SYMBOLS.get(family, 'size')}={size}"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def backward_over_forward(results: Results, family: str, size: int, backend: str) -> float | None:
    """(t_fwd+bwd - t_fwd) / t_fwd: what the backward pass costs in units of the forward pass."""
    forward = results.median(family, size, "forward", backend)
    both = results.median(family, size, "forward+backward", backend)
    if forward is None or both is None:
        return None
    return ratio(both - forward, forward)


@dataclass(frozen=True)
class TargetCheck:
    claim: str  # e.g. "autodiff / torch, scalar_chain N=1000, forward+backward"
    limit: float
    value: float | None
    medians: tuple[tuple[str, float | None], ...]  # (which, seconds) that the value is computed from

    @property
    def evidence(self) -> str:
        missing = [which for which, seconds in self.medians if seconds is None]
        if missing:
            return "missing: " + ", ".join(missing)
        return ", ".join(f"{which} {format_seconds(seconds)}" for which, seconds in self.medians)

    @property
    def verdict(self) -> str:
        return "not measured" if self.value is None else ("PASS" if self.value <= self.limit else "MISS")


def _median_ratio_check(results: Results, family: str, size: int, backend: str, limit: float) -> TargetCheck:
    ours = results.median(family, size, "forward+backward", OURS)
    theirs = results.median(family, size, "forward+backward", backend)
    return TargetCheck(
        f"{OURS} / {backend}, {family} {size_text(family, size)}, forward+backward",
        limit,
        ratio(ours, theirs),
        ((OURS, ours), (backend, theirs)),
    )


def target_checks(results: Results) -> list[TargetCheck]:
    checks = [
        _median_ratio_check(results, "scalar_chain", 1000, "torch", 0.15),
        _median_ratio_check(results, "scalar_chain", 1000, "notebook", 0.25),
        _median_ratio_check(results, "mlp", 256, "torch", 1.10),
    ]
    # Linear cost: 10x the nodes should cost at most ~10x the time (11 leaves room for noise).
    small, large = (1000, 10000) if results.get("scalar_chain", 10000, "forward+backward", OURS) else (100, 1000)
    t_small = results.median("scalar_chain", small, "forward+backward", OURS)
    t_large = results.median("scalar_chain", large, "forward+backward", OURS)
    checks.append(
        TargetCheck(
            f"linearity: {OURS} scalar_chain N={large} / N={small}, forward+backward",
            11.0,
            ratio(t_large, t_small),
            ((f"N={large}", t_large), (f"N={small}", t_small)),
        )
    )
    for family, size in (("scalar_chain", 1000), ("mlp", 256)):
        forward = results.median(family, size, "forward", OURS)
        both = results.median(family, size, "forward+backward", OURS)
        checks.append(
            TargetCheck(
                f"backward / forward: {OURS} {family} {size_text(family, size)}, (fwd+bwd - fwd) / fwd",
                BACKWARD_OVER_FORWARD_LIMIT,
                backward_over_forward(results, family, size, OURS),
                (("forward+backward", both), ("forward", forward)),
            )
        )
    return checks


@dataclass(frozen=True)
class Crossover:
    family: str
    size: int
    t_autodiff: float
    t_jit: float
    compile_seconds: float | None

    @property
    def n_star(self) -> float | None:
        """Evaluations after which compiling pays: compile + n t_jit = n t_autodiff."""
        if self.compile_seconds is None or self.t_autodiff <= self.t_jit:
            return None
        return self.compile_seconds / (self.t_autodiff - self.t_jit)

    def describe(self) -> str:
        if self.compile_seconds is None:
            return "compile time not recorded"
        if self.n_star is None:
            return "jit never faster"
        first_call = " (jit pays from the first call)" if self.n_star < 1 else ""
        return f"n* = {self.n_star:.3g} evaluations{first_call}"


def jit_crossovers(results: Results) -> list[Crossover]:
    found = []
    for family in results.families():
        for size in results.sizes(family):
            ours = results.get(family, size, "forward+backward", OURS)
            jit = results.get(family, size, "forward+backward", JIT)
            if ours and jit:
                found.append(Crossover(family, size, ours.median, jit.median, jit.compile_seconds))
    return found


# ---- report.md -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveEnd:
    """A backend measured at the smaller sizes of a family but not at its largest: where its
    curve stops in the plots, and why (from the JSON's machine info, when the suite recorded it)."""

    family: str
    backend: str
    passes: tuple[str, ...]
    last_size: int
    next_size: int
    reason: str | None

    def describe(self) -> str:
        which = self.backend if len(self.passes) == len(PASSES) else f"{self.backend} {', '.join(self.passes)}"
        reason = self.reason or "no measurement in the JSON, and no reason recorded"
        return (
            f"{which} stops at {size_text(self.family, self.last_size)}; "
            f"{size_text(self.family, self.next_size)}: {reason}"
        )


def curve_ends(results: Results, family: str, passes: Sequence[str] = PASSES) -> list[CurveEnd]:
    """Each (backend, passes) whose measurements end before the family's largest measured size.
    A family measured at one size has no curves, so nothing ends early."""
    sizes = results.sizes(family)
    if len(sizes) < 2:
        return []
    grouped: dict[tuple[str, int, int, str | None], list[str]] = {}
    for backend in results.backends(family):
        for pass_name in passes:
            measured = [s for s in sizes if results.get(family, s, pass_name, backend)]
            if not measured or measured[-1] == sizes[-1]:
                continue
            next_size = next(s for s in sizes if s > measured[-1])
            reason = results.why_not_measured(family, next_size, pass_name, backend)
            grouped.setdefault((backend, measured[-1], next_size, reason), []).append(pass_name)
    return [
        CurveEnd(family, backend, tuple(found), last, next_size, reason)
        for (backend, last, next_size, reason), found in grouped.items()
    ]
