"""Where cases run: worker processes, and everything about their lives, in one place.

- `spawn_pool` starts a process pool whose workers ignore Ctrl-C (the main process decides
  when to stop) and exit as soon as the main process is gone (`watch_parent`); `kill_pool`
  ends one at once. The audit, the selftest and the engine host use them.
- `StopOnSignals`: SIGINT and SIGTERM ask the main process to stop, and write a partial report.
- A worker loads the backends of an audit once (`load_worker_backends`, under the audit's name:
  a Dask worker may serve several) and runs every task of that audit with them
  (`run_with_backends`). `Workers` is where an audit's tasks go: the `ProcessPool` here, or a
  Dask cluster (oracles/cluster.py).

This module knows nothing of what a backend is: the loader it is given makes them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


def _start_worker(parent: int, initializer: Callable | None, arguments: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
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


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill every worker at once; their engine hosts' watchdogs take the engines down with them."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


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
