"""The engine under test runs in a child process of its own, always.

Whatever the engine does (hangs, calls os._exit, segfaults, runs out of memory, raises
KeyboardInterrupt or SystemExit, raises an exception that cannot be printed, prints megabytes,
mutates what it is given, starts processes of its own) happens in that child, the engine
host. The caller sees `EngineFailed`, which `check_case` records as a finding on exactly the
case that caused it. It carries the crash as data (oracles/crash.py):
- timed out, when an evaluation takes longer than the time limit: the host (with every
  process it started) is killed, and the next call starts a fresh one;
- died, when the host dies, with how (exit status or signal); the next call starts a fresh one;
- raised, when the engine raised anything at all, with the exception's type, message (or why
  it has none) and where.

The host runs in a session of its own, so a Ctrl-C at the terminal reaches the audit, which
decides when to stop, and killing the host's process group takes the engine's own children
with it. A watchdog thread in the host kills its group when the process that started it is
gone, so no engine process outlives the audit. The engine's stdout and stderr go to a log file
when one is given (an audit's report folder has `engine.log`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..crash import Crash, safe_text
from ..workers import watch_parent
from .plugin import PluginError, load_engine

# The longest an engine's import may take (tinygrad and TensorFlow take seconds).
IMPORT_SECONDS = 120.0
DEFAULT_TIMEOUT = 10.0  # seconds one evaluation of one case may take
ENGINE_LOG = "engine.log"  # the file name of the engine's output, in an audit's report folder


class EngineFailed(Exception):
    """The engine did not answer one call: `crash` says how."""

    def __init__(self, crash: Crash):
        super().__init__(crash.describe())
        self.crash = crash


def _portable(x):
    """`x` as something that travels back intact: a numpy array of numbers, or a string naming what it was
    (which the comparison reports as a result that is not an array of real numbers)."""
    try:
        array = np.asarray(x)
        if array.dtype.kind in "biufc":
            return array
    except BaseException:
        pass
    return f"<{type(x).__name__}>"


def _kill_own_group() -> None:
    os.killpg(0, signal.SIGKILL)  # the audit's process is gone: so is everything the engine started


def _host_main(spec: str, connection, log_path: str | None, parent: int) -> None:
    os.setsid()
    # Like `python -m`: a plug-in in the folder the user works in imports by its name.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the audit decides when to stop
    threading.Thread(target=watch_parent, args=(parent, _kill_own_group), daemon=True).start()
    if log_path is not None:
        try:
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            pass  # no log where it was asked for: the engine's output goes where the harness's does
        else:
            os.dup2(log, 1)
            os.dup2(log, 2)
    try:
        backend = load_engine(spec)
    except PluginError as error:
        connection.send(("error", str(error)))
        return
    except BaseException as error:  # SystemExit or KeyboardInterrupt at import
        connection.send(("error", f"--engine {spec!r}: importing it raised {Crash.raised(error).describe()}"))
        return
    accepts = getattr(backend.plugin, "accepts", None)
    connection.send(
        ("ready", {"name": safe_text(backend.name, 80), "ops": sorted(backend.ops), "accepts": callable(accepts),
                   "unsupported": {op: safe_text(why, 200) for op, why in backend.unsupported.items()}})
    )  # fmt: skip
    while True:
        try:
            request, arguments = connection.recv()
        except (EOFError, OSError):
            return  # the caller is done
        answer: tuple[str, object]
        try:
            if request == "evaluate":
                value, gradients = backend.evaluate(*arguments)
                if isinstance(gradients, dict):
                    gradients = {str(name): _portable(g) for name, g in gradients.items()}
                else:
                    gradients = _portable(gradients)
                answer = ("ok", (_portable(value), gradients))
            else:
                reason = accepts(*arguments) if accepts is not None else None
                answer = ("ok", safe_text(reason, 200) if isinstance(reason, str) and reason else None)
        except BaseException as error:  # anything the engine raises, KeyboardInterrupt included
            answer = ("raised", Crash.raised(error))
        try:
            connection.send(answer)
        except BaseException as error:
            connection.send(("raised", Crash.raised(error, prefix="its answer could not be sent back: ")))


@dataclass
class EngineInfo:
    name: str
    ops: list[str]
    unsupported: dict[str, str]
    accepts: bool


class EngineHost:
    """The engine named by `spec`, in a child process; started on first use and again after it dies."""

    def __init__(self, spec: str, timeout: float = DEFAULT_TIMEOUT, log_path: str | None = None):
        self.spec, self.timeout, self.log_path = spec, timeout, log_path
        self.process: Any = None  # a spawn-context Process, once started
        self.connection: Any = None
        self.info: EngineInfo | None = None

    def start(self) -> EngineInfo:
        """Start the host and load the engine there; PluginError (one line) if it cannot be loaded."""
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the host's process, without waiting for it: `ready()` waits."""
        context = multiprocessing.get_context("spawn")  # fork would copy JAX's and PyTorch's threads half-alive
        mine, theirs = context.Pipe()
        self.process = context.Process(
            target=_host_main, args=(self.spec, theirs, self.log_path, os.getpid()), daemon=True
        )
        self.process.start()
        theirs.close()
        self.connection = mine

    def ready(self) -> EngineInfo:
        """Wait until the launched host has loaded the engine; PluginError (one line) if it cannot."""
        mine = self.connection
        try:
            if not mine.poll(IMPORT_SECONDS):
                self.stop()
                raise PluginError(f"--engine {self.spec!r}: importing it took longer than {IMPORT_SECONDS:g} s")
            status, payload = mine.recv()
        except (EOFError, OSError):
            how = Crash.died(self._reap()).message
            raise PluginError(f"--engine {self.spec!r}: its process died while importing it ({how})") from None
        if status == "error":
            self.stop()
            raise PluginError(payload)
        self.info = EngineInfo(**payload)
        return self.info

    def call(self, request: str, *arguments):
        if self.process is None or not self.process.is_alive():
            self.start()
        assert self.connection is not None
        try:
            self.connection.send((request, arguments))
            if not self.connection.poll(self.timeout):
                self.stop()
                raise EngineFailed(Crash.timed_out(self.timeout))
            status, payload = self.connection.recv()
        except (EOFError, OSError, BrokenPipeError):
            exitcode = self._reap()
            raise EngineFailed(Crash.died(exitcode)) from None
        if status == "raised":
            raise EngineFailed(payload)
        return payload

    def _reap(self) -> int | None:
        process = self.process
        self.stop()
        return process.exitcode if process is not None else None

    def stop(self) -> None:
        """Kill the host and every process the engine started; safe to call at any time."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):  # the group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        self.process.join(5)
        if self.connection is not None:
            self.connection.close()
        self.process, self.connection = None, None


class IsolatedEngine:
    """A plug-in that forwards every call to an EngineHost: what `load_backends` gives the harness."""

    def __init__(self, host: EngineHost, info: EngineInfo):
        self.host = host
        self.name = info.name
        self.ops = set(info.ops)
        self.unsupported = dict(info.unsupported)
        if info.accepts:
            self.accepts = lambda graph: host.call("accepts", graph)

    def evaluate(self, graph, values, cotangent):
        return self.host.call("evaluate", graph, values, cotangent)

    def close(self) -> None:
        self.host.stop()


def launch_engine(spec: str, timeout: float = DEFAULT_TIMEOUT, log_path: str | None = None):
    """Start the engine's host now, and return a function that waits for it to be ready: the
    caller does other work (imports JAX and PyTorch) while the host imports the engine."""
    host = EngineHost(spec, timeout, log_path)
    host.launch()
    return lambda: IsolatedEngine(host, host.ready())
