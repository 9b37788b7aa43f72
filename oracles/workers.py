"""Where cases run: worker processes, and everything about their lives, in one place.

- `spawn_pool` starts a process pool whose workers ignore Ctrl-C (the main process decides
  when to stop) and exit as soon as the main process is gone (`watch_parent`); `kill_pool`
  ends one at once, with every process below its workers. The audit, the selftest and the
  engine host use them.
- `kill_processes` kills a tree of processes, found in /proc, including those that left their
  process group (a plug-in's `start_new_session=True`); `warn_left_running` names any survivor.
- `StopOnSignals`: SIGINT and SIGTERM ask the main process to stop, and write a partial report.
- A worker loads the backends of an audit once (`load_worker_backends`, under the audit's name:
  a Dask worker may serve several) and runs every task of that audit with them
  (`run_with_backends`). `Workers` is where an audit's tasks go: the `ProcessPool` here, or a
  Dask cluster (oracles/cluster.py).

This module knows nothing of what a backend is: the loader it is given makes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context


def watch_parent(parent: int, when_gone: Callable[[], None]) -> None:
    """Call `when_gone()` as soon as the process `parent` that started this one is gone (checked
    twice a second). Run it in a daemon thread."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            when_gone()


def _exit_worker() -> None:
    os._exit(1)  # the main process is gone: so is this worker (its engine host follows it)


PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def adopt_orphans() -> None:
    """Have a process below this one whose parent dies given to this one rather than to init (a
    "child subreaper", Linux 3.4), so that it stays where a walk down from here finds it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _start_worker(parent: int, initializer: Callable | None, arguments: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    # What an engine host leaves when it is killed stays below this worker, where the pool's
    # end finds it (and names it, if it cannot be killed), instead of going to init.
    adopt_orphans()
    threading.Thread(target=watch_parent, args=(parent, _exit_worker), daemon=True).start()
    if initializer is not None:
        initializer(*arguments)


def spawn_pool(count: int, initializer: Callable | None = None, arguments: tuple = ()) -> ProcessPoolExecutor:
    """`count` worker processes, spawned (not forked: JAX and PyTorch hold threads that fork would
    copy half-alive), each running `initializer(*arguments)` first."""
    return ProcessPoolExecutor(
        count, mp_context=get_context("spawn"), initializer=_start_worker,
        initargs=(os.getpid(), initializer, arguments),
    )  # fmt: skip


def kill_pool(pool: ProcessPoolExecutor) -> list[Running]:
    """Kill every worker at once, with every process below it: its engine host and whatever the
    engine started. All are gone when this returns, so none outlives the audit; waiting for the
    hosts' watchdogs instead would race the main process's exit."""
    workers = list(getattr(pool, "_processes", {}).values())
    left = kill_processes(roots=[process.pid for process in workers])
    for process in workers:
        process.kill()  # without /proc, kill_processes finds nothing: the workers at least
    for process in workers:
        # Reaped here: a dead worker not waited for would be a zombie until an init that reaps
        # adopts it, and some containers' init never does.
        process.join(1.0)
    pool.shutdown(wait=False, cancel_futures=True)
    warn_left_running("the workers", left)
    return left


# ---- Processes below ours -------------------------------------------------------------------------
# Whatever a worker or an engine starts must end with the audit, and a process group is not
# enough to find it: a process that calls setsid (subprocess's `start_new_session=True`, a
# daemon, a compiler server) leaves the group. So processes are found by their parent pids in
# /proc (Linux; elsewhere nothing is found, and the callers fall back to their process groups).


@dataclass(frozen=True)
class Running:
    """A process, named by its pid and its start time: once a process is gone its pid may be
    given to another one, which a kill must never reach."""

    pid: int
    start: int  # in clock ticks since boot
    name: str  # the command's name, for a message


def _processes() -> dict[int, tuple[int, int, Running]]:
    """Every live process: {pid: (parent pid, process group, Running)}. A zombie is left out: it is
    dead already, and waits only for its parent to read its exit status."""
    table = {}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # gone since the listing
        # The command's name is in parentheses and may itself hold spaces and parentheses.
        name, _, rest = stat[stat.find(b"(") + 1 :].rpartition(b")")
        fields = rest.split()  # fields[0] is the state, field 3 of proc(5)
        if fields[0] in (b"Z", b"X"):
            continue
        table[pid] = (int(fields[1]), int(fields[2]), Running(pid, int(fields[19]), name.decode(errors="replace")))
    return table


def _environment_holds(pid: int, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return entry in file.read().split(b"\0")
    except OSError:
        return False  # gone, or another user's


def processes_below(root: int, table: dict | None = None) -> list[Running]:
    """The processes below `root`: its children, theirs, and so on."""
    table = _processes() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    below, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        below.append(table[pid][2])
        todo.extend(children.get(pid, []))
    return below


def _alive(process: Running, table: dict) -> bool:
    return process.pid in table and table[process.pid][2].start == process.start  # the same process


def _signal(process: Running, signum: int, table: dict) -> None:
    if _alive(process, table):
        with contextlib.suppress(OSError):  # gone since, or not ours to signal: then named among the survivors
            os.kill(process.pid, signum)


def kill_processes(
    roots: Iterable[int] = (), groups: Iterable[int] = (), mark: str | None = None, known: Iterable[Running] = ()
) -> list[Running]:
    """Kill the processes `roots` and every process below them, every process of the process
    `groups`, every process whose environment holds `mark` ("NAME=value"), and those of `known`
    still running. The calling process is spared (an engine host that ends itself kills itself
    last). Returns the processes still running a second later."""
    roots, groups, known = set(roots), set(groups), list(known)
    entry = mark.encode() if mark is not None else None
    me = os.getpid()
    caught: dict[int, Running] = {}
    # Each one is stopped before any is killed: a stopped process starts no other, and its
    # children stay below it, where the next look finds them (a killed parent's children would
    # go to init, out of the tree). Looking again until nothing new is found catches a process
    # started between a look and a stop.
    for _ in range(100):
        table = _processes()
        found = [table[pid][2] for pid in roots if pid in table]
        found += [process for root in roots for process in processes_below(root, table)]
        found += [process for _, group, process in table.values() if group in groups]
        found += [process for process in known if _alive(process, table)]
        if entry is not None:
            found += [process for pid, (_, _, process) in table.items() if pid not in caught and
                      _environment_holds(pid, entry)]  # fmt: skip
        new = {process.pid: process for process in found if process.pid not in caught and process.pid != me}
        if not new:
            break
        for process in new.values():
            _signal(process, signal.SIGSTOP, table)
        caught.update(new)
    table = _processes()
    for process in caught.values():
        _signal(process, signal.SIGKILL, table)
    deadline = time.monotonic() + 1.0
    while True:
        table = _processes()
        left = [process for process in caught.values() if _alive(process, table)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


# The processes this one failed to kill, by pid: `left_running()` names those still running, for
# the report.
_survivors: dict[int, Running] = {}


def left_running() -> list[Running]:
    """The processes that outlived a kill in this process (its own, or its workers' at the pool's
    end) and are still running now."""
    table = _processes()
    return sorted((process for process in _survivors.values() if _alive(process, table)), key=lambda p: p.pid)


def warn_left_running(who: str, left: list[Running]) -> None:
    """One line on stderr naming the processes `left` running, if any; remembered for `left_running()`."""
    _survivors.update((process.pid, process) for process in left)
    if left:
        listed = ", ".join(f"pid {process.pid} ({process.name})" for process in left)
        plural = "es" if len(left) > 1 else ""
        print(f"autodiff-audit: warning: {who} left {len(left)} process{plural} running: {listed}",
              file=sys.stderr, flush=True)  # fmt: skip


class StopOnSignals:
    """SIGINT and SIGTERM set `stop`: the work in progress is stopped and a partial report written.
    A second one exits at once (the workers' watchdogs take them down within a second)."""

    def __init__(self):
        self.stop = threading.Event()
        self.signal: int | None = None
        self.previous: dict = {}

    def _handle(self, signum, frame):
        if self.stop.is_set():
            print("autodiff-audit: exiting at once, without a report", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signal = signum
        self.stop.set()
        name = signal.Signals(signum).name
        print(f"autodiff-audit: {name}: stopping the workers and writing a partial report (again to exit at once)",
              file=sys.stderr, flush=True)  # fmt: skip

    def __enter__(self) -> StopOnSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


# Each worker process loads the backends once, under the name of the audit it serves, and keeps
# them for its life. A lock makes a worker with several threads run one case at a time: the
# engine host answers one call at a time.
_loaded: dict[str, tuple[Future, threading.Lock]] = {}


class ClusterError(RuntimeError):
    """A Dask cluster (--cluster) that cannot run the audit: one line, for the user."""


class BackendsUnavailable(RuntimeError):
    """This worker has no backends for the audit (their loading failed here): its cases are lost."""


def load_worker_backends(name: str, load: Callable[[], object]) -> None:
    """Load audit `name`'s backends with `load()` in this worker (a pool's initializer, a Dask worker plugin)."""
    loading: Future = Future()
    _loaded[name] = (loading, threading.Lock())
    try:
        loading.set_result(load())
    except BaseException as error:
        loading.set_exception(error)
        raise


def forget_worker_backends(name: str, close: Callable[[object], None]) -> None:
    """Close audit `name`'s backends in this worker with `close(backends)`."""
    loading, _ = _loaded.pop(name, (None, None))
    if loading is not None and loading.done() and loading.exception() is None:
        close(loading.result())


def run_with_backends(name: str, work: Callable):
    """`work(backends)` with audit `name`'s backends of this worker."""
    if name not in _loaded:
        raise BackendsUnavailable("the backends were never loaded in this worker")
    loading, lock = _loaded[name]
    try:
        backends = loading.result()
    except Exception as error:
        raise BackendsUnavailable(f"the backends could not be loaded in this worker: {error}") from None
    with lock:
        return work(backends)


def describe_cases(indices: list[int]) -> str:
    """`indices` (in order) for a message: "cases 4..9", or "7 cases from 4 to 99" when some between are not."""
    first, last = indices[0], indices[-1]
    if len(indices) == last - first + 1:
        return f"case {first}" if first == last else f"cases {first}..{last}"
    return f"{len(indices)} cases from {first} to {last}"


class Workers:
    """Where an audit's tasks run: `submit(function, *arguments)` gives a concurrent.futures
    Future of `function(name, *arguments)` run in a worker that has loaded the backends.
    A future whose worker was lost raises one of `lost`."""

    name: str
    lost: tuple[type[BaseException], ...]
    description: str

    def submit(self, function, *arguments) -> Future:
        raise NotImplementedError

    def lost_cases(self, lost: list[int]) -> str:
        """Why the cases `lost` (in order) have no result."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop now: a signal asked for it."""

    def close(self) -> None:
        """Finished: let the workers go."""


class ProcessPool(Workers):
    """The embedded default: `count` worker processes on this machine, each loading the backends
    with `load()` as it starts."""

    name = "pool"
    lost = (BrokenProcessPool, BackendsUnavailable)

    def __init__(self, count: int, load: Callable[[], object]):
        self.description = f"a process pool of {count} on this machine"
        self.pool = spawn_pool(count, load_worker_backends, (self.name, load))

    def submit(self, function, *arguments) -> Future:
        return self.pool.submit(function, self.name, *arguments)

    def lost_cases(self, lost: list[int]) -> str:
        return (
            f"a worker process died or could not start, so {describe_cases(lost)} were not audited: a crash below "
            "Python (a segfault, running out of memory) in a reference, or backends that failed to load there; "
            "the engine runs apart, so not the engine"
        )

    def kill(self) -> None:
        kill_pool(self.pool)

    def close(self) -> None:
        # Every result is in, so nothing is left in the workers to save; letting them exit
        # would wait seconds on JAX's and PyTorch's teardown.
        kill_pool(self.pool)
