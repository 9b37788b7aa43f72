"""The installed command's entry point (`autodiff-audit`), light on purpose.

Every process an audit spawns (its workers, and an engine host for each engine it runs) starts by
running the command's script again, as multiprocessing's spawn does with a main module. If that
script imported the command line (oracles.cli: the audit, the reports, rich, ...), each engine
host would pay for it, about 0.1 s, though it needs none of it: the selftest starts one for each
of its planted engines.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from .cli import main as command_line

    return command_line(argv)
