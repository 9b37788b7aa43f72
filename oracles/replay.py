"""`autodiff-audit replay`: saved cases, each taken through the audit's own pipeline, with every
backend's answer printed in full (at full precision; a large array abbreviated) and the
findings as the audit would settle them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .check import Backends, Evaluation
from .check.modes import ModeAnswer, case_tangents
from .format import Case, infer_shapes
from .pipeline import run_case


def replay(paths: list[Path], cases: list[Case], backends: Backends) -> bool:
    """Print each case's evaluations and findings; True if any fails."""
    found = False
    np.set_printoptions(precision=17, linewidth=120)
    for path, case in zip(paths, cases):
        result = run_case(case, backends, keep=True).result
        print(
            f"== {path}: {len(case.graph['nodes'])} op nodes, output {case.graph['output']!r} "
            f"of shape {list(infer_shapes(case.graph)[case.graph['output']])}"
        )
        if result.skipped:
            print(f"  the engine declines it: {result.skipped}")
            continue
        for evaluation in result.evaluations or []:
            _print_evaluation(evaluation)
        _print_tangents(case, result.mode_answers or [])
        for record in result.kinks:
            answers = ", ".join(f"{backend} {answer}" for backend, answer in record["answers"].items())
            print(f"  at {record['kink']} in {record['node']}: {answers}")
        for finding in result.findings:
            op = f", op {finding.op!r}" if finding.op else ""
            print(f"  FINDING {finding.kind} in {finding.backend or 'the references'}{op}: {finding.detail}")
        failed = any(finding.kind.rule.discrepancy for finding in result.findings)
        print(
            f"  {result.checks} checks, worst engine margin {result.engine_margin:.3g}, {'FAIL' if failed else 'pass'}"
        )
        found = found or failed
    return found


SHOWN_ELEMENTS = 100  # more than this, and replay abbreviates an array (the case's JSON has them all)


def _shown(array) -> str:
    try:
        array = np.asarray(array)
    except Exception:
        return "<not an array>"
    if array.dtype.kind not in "biuf":
        return f"<not an array of real numbers: {array.dtype}>"
    if array.size <= SHOWN_ELEMENTS:
        return str(array.tolist())
    shown = np.array2string(array, threshold=SHOWN_ELEMENTS, edgeitems=3, precision=17, max_line_width=120)
    return f"shape {list(array.shape)}, abbreviated: " + " ".join(shown.split())


def _print_evaluation(evaluation: Evaluation) -> None:
    if evaluation.crash:
        print(f"  {evaluation.backend}: crashed: {evaluation.crash.describe()}")
        return
    print(f"  {evaluation.backend}: value = {_shown(evaluation.value)}")
    gradients = evaluation.gradients if isinstance(evaluation.gradients, dict) else {}
    for name, gradient in gradients.items():
        print(f"  {evaluation.backend}: vjp[{name}] = {_shown(gradient)}")


def _print_tangents(case: Case, answers: list[ModeAnswer]) -> None:
    """Forward mode and second order: the tangents (from the case's seed), then each answer."""
    if not answers:
        return
    for which, tangents in enumerate((case_tangents(case, 0), case_tangents(case, 1))):
        for name, tangent in tangents.items():
            print(f"  tangent t{which + 1}[{name}] = {_shown(tangent)}")
    hvps_seen: set[str] = set()
    for answer in answers:
        if answer.crash:
            print(f"  {answer.backend}: {answer.mode} crashed: {answer.crash.describe()}")
        elif answer.mode == "jvp":
            pair = answer.answer if isinstance(answer.answer, (tuple, list)) and len(answer.answer) == 2 else None
            print(f"  {answer.backend}: jvp (J t1) = {_shown(pair[1]) if pair else '<not a (value, tangent) pair>'}")
        else:
            along = "t2" if answer.backend in hvps_seen else "t1"  # the engine's second hvp is along t2
            hvps_seen.add(answer.backend)
            products = answer.answer if isinstance(answer.answer, dict) else {}
            for name, product in products.items():
                print(f"  {answer.backend}: hvp[{name}] (H {along}) = {_shown(product)}")
