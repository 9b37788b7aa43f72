"""Engines with one planted bug each, behind the plug-in protocol: the project's own, in
oracles/selftest/planted.py (what `autodiff-audit selftest` audits), by the same names here.
Audit one with, for example:

    autodiff-audit audit --engine examples.broken_engines:power_without_x
"""

from oracles.selftest.planted import *  # noqa: F403 - every engine and bug table, by the same names
