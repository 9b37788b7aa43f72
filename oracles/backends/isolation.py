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
decides when to stop. No process the engine starts outlives the host:
- however the host ends (`stop()`, its caller done or gone, SIGTERM), every process it started
  is killed with it: those of its process group, and those that left the group (a child
  started with `start_new_session=True`, as compilers are), found below the host in /proc.
  The host adopts the orphans below it (Linux's child subreaper), so a process whose parent
  died is still below it. Every process it starts carries the host's mark in its environment,
  which finds those that escaped when the host itself died first; and the processes seen below
  the host are remembered, which finds those that also cleared their environment;
- a watchdog thread in the host ends it when the process that started it is gone;
- one that cannot be killed is named in a warning line on stderr.
The engine's stdout and stderr go to a log file when one is given (an audit's report folder
has `engine.log`), else to /dev/null: never to the harness's own, which a process the engine
left running would hold open (`autodiff-audit audit ... | tee log` would not return).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..crash import Crash, safe_text
from ..workers import Running, adopt_orphans, kill_processes, processes_below, warn_left_running, watch_parent
from .plugin import PluginError, load_engine

# The longest an engine's import may take (tinygrad and TensorFlow take seconds).
IMPORT_SECONDS = 120.0
DEFAULT_TIMEOUT = 10.0  # seconds one evaluation of one case may take
ENGINE_LOG = "engine.log"  # the file name of the engine's output, in an audit's report folder
HOST_MARK = "AUTODIFF_AUDIT_ENGINE_HOST"  # in the environment of an engine host and of what it starts
LOOK_SECONDS = 1.0  # how often, at most, the processes below a host are looked at (a look: a few ms)


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


def _end_host(*_signal_handler_arguments) -> None:
    """Kill every process the engine started, then this host: its caller is done or gone."""
    mark = f"{HOST_MARK}={os.environ[HOST_MARK]}"
    left = kill_processes(roots=[os.getpid()], groups=[os.getpgid(0)], mark=mark)
    warn_left_running("the engine", left)  # into the engine's log: the harness's stderr is not this process's
    os.killpg(0, signal.SIGKILL)  # this host last, with anything of its group started since


def _detach_output(log_path: str | None) -> None:
    """Send this process's output, and so that of every process the engine starts, to the engine
    log (or /dev/null), never to the harness's stdout and stderr: a process the engine leaves
    running would hold them open, and `autodiff-audit ... | tee log` would wait for it."""
    try:
        output = os.open(log_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        output = os.open(os.devnull, os.O_WRONLY)  # no log where it was asked for
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(nothing)
    os.close(output)
    # multiprocessing passed this process its pipe (and its resource tracker's) as inheritable
    # descriptors: no child of the engine's needs them.
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"):
            if int(fd) > 2:
                with contextlib.suppress(OSError):
                    os.set_inheritable(int(fd), False)


def _host_main(spec: str, connection, log_path: str | None, parent: int, mark: str) -> None:
    os.setsid()
    # All of this before the engine is imported: an engine may start processes at import.
    os.environ[HOST_MARK] = mark
    adopt_orphans()  # what the engine starts stays below the host, where a walk finds it
    _detach_output(log_path)
    # Like `python -m`: a plug-in in the folder the user works in imports by its name.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the audit decides when to stop
    # A daemonic host gets SIGTERM from multiprocessing when its caller exits normally.
    signal.signal(signal.SIGTERM, _end_host)
    threading.Thread(target=watch_parent, args=(parent, _end_host), daemon=True).start()
    try:
        _serve(spec, connection)
    finally:
        _end_host()


def _serve(spec: str, connection) -> None:
    """Load the engine, then answer the caller's requests until it is done."""
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
                   "modes": sorted(backend.modes),
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
            elif request == "jvp":
                value, tangent = backend.jvp(*arguments)
                answer = ("ok", (_portable(value), _portable(tangent)))
            elif request == "hvp":
                products = backend.hvp(*arguments)
                if isinstance(products, dict):
                    products = {str(name): _portable(p) for name, p in products.items()}
                answer = ("ok", _portable(products) if not isinstance(products, dict) else products)
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
    modes: list[str]


class EngineHost:
    """The engine named by `spec`, in a child process; started on first use and again after it dies."""

    def __init__(self, spec: str, timeout: float = DEFAULT_TIMEOUT, log_path: str | None = None):
        self.spec, self.timeout, self.log_path = spec, timeout, log_path
        self.process: Any = None  # a spawn-context Process, once started
        self.connection: Any = None
        self.info: EngineInfo | None = None
        self.mark = ""  # the value of HOST_MARK in this host's environment (and in what it starts)
        # The processes seen below the host: if the host dies first, its orphans are out of reach
        # of a walk down from it, and one that also cleared its environment carries no mark.
        self.seen: dict[int, Running] = {}
        self.next_look = 0.0

    def start(self) -> EngineInfo:
        """Start the host and load the engine there; PluginError (one line) if it cannot be loaded."""
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the host's process, without waiting for it: `ready()` waits."""
        context = multiprocessing.get_context("spawn")  # fork would copy JAX's and PyTorch's threads half-alive
        mine, theirs = context.Pipe()
        self.mark = uuid.uuid4().hex
        self.process = context.Process(
            target=_host_main, args=(self.spec, theirs, self.log_path, os.getpid(), self.mark), daemon=True
        )
        self.process.start()
        theirs.close()
        self.connection = mine
        self.seen, self.next_look = {}, 0.0

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
        self._look_below()  # what the engine started at import
        return self.info

    def _look_below(self) -> None:
        """Remember the processes below the host now, at most once every LOOK_SECONDS."""
        if self.process is not None and time.monotonic() >= self.next_look:
            self.seen.update((process.pid, process) for process in processes_below(self.process.pid))
            self.next_look = time.monotonic() + LOOK_SECONDS

    def call(self, request: str, *arguments):
        if self.process is None or not self.process.is_alive():
            self.stop()  # a host that died between calls: what it started goes with it
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
        self._look_below()
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
        pid = self.process.pid
        # The host is killed here, not asked to end itself: it may be hung in the engine.
        left = kill_processes(roots=[pid], groups=[pid], mark=f"{HOST_MARK}={self.mark}", known=self.seen.values())
        with contextlib.suppress(OSError):  # without /proc nothing was found: the host's group at least
            os.killpg(pid, signal.SIGKILL)
        self.process.kill()
        self.process.join(5)
        if self.connection is not None:
            self.connection.close()
        self.process, self.connection, self.seen = None, None, {}
        warn_left_running("the engine", left)


class IsolatedEngine:
    """A plug-in that forwards every call to an EngineHost: what `load_backends` gives the harness."""

    def __init__(self, host: EngineHost, info: EngineInfo):
        self.host = host
        self.name = info.name
        self.ops = set(info.ops)
        self.unsupported = dict(info.unsupported)
        if info.accepts:
            self.accepts = lambda graph: host.call("accepts", graph)
        # Only the modes the engine has: the harness reads them off the plug-in (plugin.modes_of).
        if "jvp" in info.modes:
            self.jvp = lambda graph, values, tangents: host.call("jvp", graph, values, tangents)
        if "hvp" in info.modes:
            self.hvp = lambda graph, values, cotangent, tangents: host.call("hvp", graph, values, cotangent, tangents)

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
