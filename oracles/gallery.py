"""`autodiff-audit gallery`: every installed real engine, audited with the same seed and settings,
and the README's engine table and list of real bugs written from what those audits found.

Each engine of engines/SHORT_NAMES whose library is installed (or each named by `--engines`, a short
name or any plug-in spec) gets three audits, run as the
user types them (`autodiff-audit audit --engine <name> ...` in a subprocess, one after another,
each with a report folder of its own under the gallery's): float64, float32 and kink mode, on
every derivative mode the engine has. Then every minimal case's standalone script for upstream
(report/upstream.py) is run, with this Python, and what it did decides the group's class:

- a real bug: the script shows it with the engine's own API (it exits 1: a wrong answer, or an
  exception other than NotImplementedError);
- a limitation the engine declares: every engine call of the script that fails raises saying the
  engine has no such rule (NotImplementedError, or "not implemented" / "not supported": autograd's
  forward mode has none for expit, MLX's none for Convolution), and no answer is wrong;
- a convention: at a kink, a valid answer no reference gives (no script is written for it);
- not shown: the script exits 0, or the group has no script (no minimal case, no reference
  answer): a group a person must look at, and the gallery says so instead of calling it a bug.

Conventions at kinks are no findings: the kink-mode audits' reports list them apart.

The gallery writes `DIR/gallery.json` (everything above, with the exact commands) and
`DIR/gallery.md`; with `--readme README.md` it also puts the same Markdown between the README's
gallery markers and the JSON at `docs/gallery.json` beside it, from which the tests check that
the README says what the command printed (tests/test_gallery.py).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .files import write_whole

# engine short name -> the package that must be importable for it to be audited
PACKAGES = {
    "micrograd": "micrograd", "tinygrad": "tinygrad", "mygrad": "mygrad", "autograd": "autograd",
    "tensorflow": "tensorflow", "mlx": "mlx", "pytensor": "pytensor", "torch": "torch", "jax": "jax",
}  # fmt: skip
SETTINGS = {"float64": [], "float32": ["--dtype", "float32"], "kinks": ["--kinks"]}
# What an engine needs beyond the shared settings, and the settings it cannot take, with why.
ENGINE_FLAGS = {
    "micrograd": ["--max-rank", "0"],  # scalars only
    "tinygrad": ["--timeout", "120"],  # its first call of each kernel compiles it (clang)
    "pytensor": ["--timeout", "120"],  # it compiles a function per graph structure
    "jax": ["--timeout", "60"],  # eager JAX compiles each operation for each new shape on its first call
}
NOT_FOR = {("micrograd", "float32"): "micrograd computes in Python floats: float64 only"}
BEGIN = "<!-- gallery: begin (written by `autodiff-audit gallery --readme README.md`; edit nothing in here) -->"
END = "<!-- gallery: end -->"
# An exception by which the engine itself says it has no such rule: NotImplementedError (autograd's
# "JVP of expit ... not defined"), MLX's "[Primitive::jvp] Not implemented for Convolution", PyTensor's
# "2nd derivatives of `product(a)` is not currently supported".
DECLARED = re.compile(r"NotImplementedError|not (currently )?(implemented|supported|defined)", re.IGNORECASE)
SCRIPT_SECONDS = 600  # one standalone script: an engine that compiles may be slow, none takes this long


class GalleryError(ValueError):
    """A gallery that cannot be made (a README without its markers, a folder that is not the gallery's)."""


@dataclass
class GalleryConfig:
    report: Path
    graphs: int
    seed: int
    engines: list[str] | None = None  # short names; None: every installed one
    readme: Path | None = None
    settings: tuple[str, ...] = tuple(SETTINGS)  # which of float64, float32 and kinks


def installed_engines() -> list[str]:
    return [name for name, package in PACKAGES.items() if importlib.util.find_spec(package) is not None]


def folder_name(engine: str) -> str:
    """An engine's folder in the gallery: its short name, or its plug-in spec made a file name."""
    return re.sub(r"[^\w.-]", "_", engine)


def audit_command(engine: str, setting: str, config: GalleryConfig) -> list[str]:
    folder = config.report / folder_name(engine) / setting
    return [
        "autodiff-audit", "audit", "--engine", engine, "--graphs", str(config.graphs), "--seed", str(config.seed),
        *SETTINGS[setting], *ENGINE_FLAGS.get(engine, []), "--no-failures", "--report", str(folder),
    ]  # fmt: skip


def _audit(engine: str, setting: str, config: GalleryConfig, say) -> dict:
    command = audit_command(engine, setting, config)
    say(f"gallery: {shlex.join(command)}")
    executable = Path(sys.executable).parent / "autodiff-audit"
    start = time.perf_counter()
    done = subprocess.run([str(executable), *command[1:]], capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    entry = {"engine": engine, "setting": setting, "command": shlex.join(command), "exit": done.returncode,
             "seconds": seconds}  # fmt: skip
    report = Path(command[-1]) / "report.json"
    if done.returncode not in (0, 1) or not report.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        entry["error"] = lines[-1] if lines else f"exit {done.returncode} and no report"
        return entry
    summary = json.loads(report.read_text())
    s = summary["summary"]
    entry.update(
        name=s["backends"]["engine"], graphs=s["graphs"], checks=s["checks"], discrepancies=s["discrepancies"],
        kinds=s["kinds"], declined=s["skipped"]["graphs"], references=s["backends"]["references"],
        left_out=s["backends"]["unavailable"],
        modes={m["name"]: m["checks"] for m in s["derivative_modes"] if m["checked"]},
        conventions=len(s["conventions"]["kinks"]), wall_seconds=s["wall_seconds"], versions=s["versions"],
        groups=[_group(group, summary, engine) for group in s["groups"]],
    )  # fmt: skip
    return entry


def _group(group: dict, report: dict, engine: str) -> dict:
    minimal = next(
        (m for m in report["minimal_cases"] if (m["kind"], m["backend"], m["op"]) == (group["kind"], group["backend"],
         group["op"]) and m["index"] == group["minimal_from"]),
        None,
    )  # fmt: skip
    entry = {
        "kind": group["kind"], "op": group["op"], "backend": group["backend"], "discrepancies": group["discrepancies"],
        "graph": group["minimal_from"], "case": None, "replay": None, "script": None,
    }  # fmt: skip
    if minimal is None or not minimal.get("case_file"):
        entry["class"], entry["why"] = "not shown", group.get("why_no_minimal") or "no minimal case"
        return entry
    replay = ["autodiff-audit", "replay", minimal["case_file"], "--engine", engine]
    entry.update(case=minimal["case_file"], replay=shlex.join(replay), size=minimal["minimal_size"][0])
    if group["kind"] == "convention":
        entry["class"], entry["why"] = "convention", "at a kink, a valid answer that no reference gives here"
        return entry
    if group["backend"] != report["summary"]["backends"]["engine"]:
        entry["class"], entry["why"] = "reference", f"the audit blames the reference {group['backend']}"
        return entry
    if not minimal.get("upstream"):
        entry["class"], entry["why"] = "not shown", "no reference answer to compare with: no standalone script"
        return entry
    entry["script"] = f"python {shlex.quote(minimal['upstream'])}"
    entry.update(_run_script(minimal["upstream"]))
    return entry


def _run_script(path: str) -> dict:
    """Run a standalone script for upstream and classify what it showed."""
    try:
        done = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=SCRIPT_SECONDS)
    except subprocess.TimeoutExpired:
        return {"class": "not shown", "why": f"its script ran past {SCRIPT_SECONDS} s", "script_exit": None}
    out = [line.strip() for line in done.stdout.splitlines()]
    wrong = [line for line in out if line.startswith("WRONG")]
    raised = [line.split(": ", 1)[1] for line in out if line.startswith("RAISED in ")]
    if done.returncode == 0:
        return {"class": "not shown", "why": "its script finds the engine right", "script_exit": 0}
    said = "; ".join(dict.fromkeys(raised + wrong))[:300]  # each thing it showed, once
    if wrong or any(not DECLARED.search(r) for r in raised):
        return {"class": "real bug", "why": said, "script_exit": done.returncode}
    if raised:  # every call that failed says the engine has no such rule (or does not support it)
        return {"class": "limitation", "why": said, "script_exit": done.returncode}
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return {"class": "not shown", "why": f"its script failed: {lines[-1] if lines else done.returncode}"[:300],
            "script_exit": done.returncode}  # fmt: skip


def run_gallery(config: GalleryConfig, say=print) -> dict:
    engines = config.engines or installed_engines()
    if not engines:
        raise GalleryError(f"no engine to audit: none of {', '.join(PACKAGES)} is installed (see --engines)")
    _check_folder(config.report, engines)
    if config.readme is not None:
        _sections(config.readme)  # a README without markers is refused before an hour of audits
    audits: list[dict] = []
    for engine in engines:
        for setting in config.settings:
            if (engine, setting) in NOT_FOR:
                audits.append({"engine": engine, "setting": setting, "not_run": NOT_FOR[(engine, setting)]})
                continue
            audits.append(_audit(engine, setting, config, say))
    versions: dict = next((a["versions"] for a in audits if "versions" in a), {})
    record = {
        "date": datetime.date.today().isoformat(), "seed": config.seed, "graphs": config.graphs,
        "python": platform.python_version(), "versions": versions, "report": str(config.report), "audits": audits,
    }  # fmt: skip
    markdown = render_gallery(record)
    write_whole(config.report / "gallery.json", json.dumps(record, indent=1) + "\n")
    write_whole(config.report / "gallery.md", markdown)
    if config.readme is not None:
        before, _, after = _sections(config.readme)
        write_whole(config.readme, before + BEGIN + "\n" + markdown + END + after)
        (config.readme.parent / "docs").mkdir(exist_ok=True)
        write_whole(config.readme.parent / "docs" / "gallery.json", json.dumps(record, indent=1) + "\n")
    return record


def _check_folder(folder: Path, engines: list[str]) -> None:
    """The gallery's folder holds nothing but what a gallery writes: it is the gallery's to use."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise GalleryError(f"--report {folder}: not a folder")
    ours = {"gallery.json", "gallery.md", *PACKAGES, *(folder_name(e) for e in engines)}
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours)
    if foreign:
        raise GalleryError(f"--report {folder}: holds {foreign[0]!r}, which no gallery wrote; choose another folder")


def _sections(readme: Path) -> tuple[str, str, str]:
    """The README before its gallery markers, between them, and after."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as error:
        raise GalleryError(f"--readme {readme}: cannot read it ({error.strerror})") from None
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise GalleryError(f"--readme {readme}: needs the gallery's two marker lines, {BEGIN!r} and {END!r}")
    before, rest = text.split(BEGIN, 1)
    inside, after = rest.split(END, 1)
    return before, inside, after


def readme_gallery(readme: Path) -> str:
    """What the README holds between its gallery markers (the test compares it with render_gallery)."""
    return _sections(readme)[1].removeprefix("\n")


def _kinds(kinds: dict) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items(), key=lambda item: (-item[1], item[0]))) or "-"


def _modes(modes: dict) -> str:
    return ", ".join(f"{mode} {n:,}" for mode, n in modes.items())


def render_gallery(record: dict) -> str:
    """The engine table and the list of real bugs, in Markdown, from a gallery's record."""
    versions = record["versions"]
    lines = [
        f"Audited on {record['date']}: seed {record['seed']}, {record['graphs']} graphs per audit, every derivative "
        f"mode each engine has; Python {record['python']}, numpy {versions.get('numpy', '?')}, references JAX "
        f"{versions.get('jax', '?')} and PyTorch {versions.get('torch', '?')} (the engine's own library left out). "
        f"Made by `autodiff-audit gallery --graphs {record['graphs']} --seed {record['seed']} --report "
        f"{record['report']} --readme README.md`.",
        "",
        "| engine | audit | graphs (declined) | checks | checks by mode | discrepancies by kind | exit | time |",
        "| --- | --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for a in record["audits"]:
        if "not_run" in a:
            lines.append(f"| {a['engine']} | {a['setting']} | not run: {a['not_run']} | | | | | |")
        elif "error" in a:
            lines.append(
                f"| {a['engine']} | {a['setting']} | failed: {a['error']} | | | | {a['exit']} | {a['seconds']} s |"
            )
        else:
            declined = f" ({a['declined']})" if a["declined"] else ""
            lines.append(
                f"| {a['name']} | {a['setting']} | {a['graphs']}{declined} | {a['checks']:,} | {_modes(a['modes'])} "
                f"| {_kinds(a['kinds'])} | {a['exit']} | {a['wall_seconds']:.0f} s |"
            )
    # One entry per (engine, kind, op): the first setting that met it gives the commands.
    met: dict[tuple, list[tuple[dict, dict]]] = {}
    for a in record["audits"]:
        for g in a.get("groups", []):
            met.setdefault((a["name"], g["kind"], g["op"], g["class"]), []).append((a, g))
    by_class: dict[str, list[str]] = {"real bug": [], "limitation": [], "convention": [], "reference": [],
                                      "not shown": []}  # fmt: skip
    for (name, kind, op, group_class), found in met.items():
        a, g = found[0]
        where = f"`{op}`" if op else "no single op"
        settings = ", ".join(f"{s['setting']} {h['discrepancies']}" for s, h in found)
        commands = " · ".join(f"`{c}`" for c in (g["replay"], g["script"]) if c)
        line = f"- **{name}**, {kind} in {where} (discrepancies: {settings}): {g['why']}"
        by_class[group_class].append(line + (f"<br>{commands}" if commands else ""))
    titles = {
        "real bug": "Real bugs, each shown by its standalone script (numpy and the engine only)",
        "limitation": 'Limitations the engines declare (no such rule: NotImplementedError, "not supported")',
        "convention": "Conventions at kinks that no reference gives (valid answers, no bugs)",
        "reference": "Findings blamed on a reference",
        "not shown": "Findings no standalone script showed (to be looked at)",
    }
    for name, entries in by_class.items():
        lines += ["", f"#### {titles[name]}: {len(entries)}", ""]
        lines += entries or ["None."]
    return "\n".join(lines) + "\n"
