"""Audits on a Dask cluster: `autodiff-audit audit --cluster tcp://host:8786`, or `--cluster local`
for a `LocalCluster` on this machine.

The workers are Dask's; the audit's logic is not. A worker plugin loads the engine and the
references once in each worker, when it joins (and again in a worker that replaces a dead
one), and the cases go out as ordinary tasks of the same functions the process pool runs
(oracles/audit.py, oracles/workers.py). Dask reruns the task of a worker that died elsewhere, so no case is lost,
and the results are gathered in case order, so a report does not depend on the cluster.

Dask is an optional extra (`pip install 'autodiff-oracles[dask]'`). Every worker needs the
same environment as the audit: this package, the references and the engine under test.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from pathlib import Path

from .backends.isolation import ENGINE_LOG
from .workers import (
    BackendsUnavailable,
    ClusterError,
    Workers,
    describe_cases,
    forget_worker_backends,
    load_worker_backends,
)  # fmt: skip

try:
    from distributed import Client, KilledWorker, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the CLI says how to install the extra
    Client = KilledWorker = LocalCluster = None  # type: ignore[assignment,misc]
    WorkerPlugin = object  # type: ignore[assignment,misc]

CONNECT_SECONDS = 15  # how long to wait for a scheduler, and for its first worker
PROFILER = ("profile", "profile-cycle")  # a Dask worker's periodic callbacks of its profiler


class LoadBackends(WorkerPlugin):
    """Loads an audit's backends in a worker as it joins (with `load`); closes them (with `close`)
    when the audit ends. A worker on another machine, where the report folder is not, keeps the
    engine's output in its own folder (`load` is a functools.partial whose `log_path` it moves)."""

    def __init__(self, name: str, load: Callable, close: Callable):
        self.name, self.load, self.close = name, load, close

    async def setup(self, worker) -> None:
        # A nanny starts its worker as a daemonic process, and multiprocessing lets no daemonic
        # process start a child; the engine host is one. What the flag would give (the host
        # dies with the worker) the host's own watchdog gives (isolation.watch_parent).
        multiprocessing.current_process().daemon = False
        # Dask's statistical profiler walks every thread's stack every 10 ms; JAX's stacks are
        # deep, and the audit measured 7% slower with it. It is back on when the audit ends.
        self.paused = [name for name in PROFILER if name in worker.periodic_callbacks]
        for name in self.paused:
            worker.periodic_callbacks[name].stop()
        load = self.load
        log_path = load.keywords.get("log_path")
        if log_path is None or not Path(log_path).parent.is_dir():  # a worker on another machine
            log_path = str(Path(worker.local_directory) / Path(log_path or ENGINE_LOG).name)
            load = functools.partial(load.func, *load.args, **{**load.keywords, "log_path": log_path})
        # Loading takes seconds (JAX, PyTorch): off the worker's event loop, which keeps its heartbeat.
        await asyncio.get_running_loop().run_in_executor(None, load_worker_backends, self.name, load)

    def teardown(self, worker) -> None:
        forget_worker_backends(self.name, self.close)
        for name in getattr(self, "paused", []):
            worker.periodic_callbacks[name].start()


class DaskWorkers(Workers):
    """The workers of a Dask cluster at `address` ("local": a LocalCluster of `count` workers),
    each loading the audit's backends with `load()` and closing them with `close(backends)`."""

    lost = (KilledWorker, CancelledError, BackendsUnavailable) if KilledWorker is not None else ()

    def __init__(self, address: str, count: int, load: Callable, close: Callable):
        if Client is None:
            raise ClusterError(
                "--cluster needs Dask distributed, which is not installed: pip install 'autodiff-oracles[dask]'"
            )
        # The client logs a lost scheduler with a traceback; the report says which cases it cost.
        # Dask's logging configuration gives some child loggers levels of their own.
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name == "distributed" or name.startswith("distributed."):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        self.cluster = None
        self.name = f"autodiff-audit-{uuid.uuid4().hex[:12]}"  # one plug-in per audit: a cluster may run several
        try:
            if address == "local":
                # One thread per worker: a case keeps a core busy, and the engine host answers one call at a time.
                self.cluster = LocalCluster(
                    n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                )  # fmt: skip
                self.client = Client(self.cluster)
            else:
                self.client = Client(address, timeout=CONNECT_SECONDS)
        except Exception as error:  # an unreachable host, a refused port, an address Dask cannot read
            self._close_cluster()
            raise ClusterError(f"--cluster {address}: cannot reach a Dask scheduler there ({error})") from None
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            self.close()
            raise ClusterError(f"--cluster {address}: no worker joined within {CONNECT_SECONDS} s") from None
        try:
            self.client.register_plugin(LoadBackends(self.name, load, close), name=self.name)
        except Exception as error:
            self.close()
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise ClusterError(f"--cluster {address}: a worker could not load the backends: {first_line}") from None
        workers = len(self.client.scheduler_info(n_workers=-1)["workers"])
        where = "a local Dask cluster" if address == "local" else f"the Dask cluster at {address}"
        self.description = f"{where} of {workers} worker{'s' * (workers != 1)}"
        self.executor = self.client.get_executor(pure=False)

    def submit(self, function, *arguments) -> Future:
        return self.executor.submit(function, self.name, *arguments)

    def lost_cases(self, lost: list[int]) -> str:
        return (
            f"{describe_cases(lost)} were not audited: the cluster lost them (a worker died on each of Dask's allowed "
            "attempts, the scheduler went away, or a worker could not load the backends); --resume runs them again"
        )

    def kill(self) -> None:
        self.executor.shutdown(wait=False)
        self.close()

    def close(self) -> None:
        try:
            if self.client.status == "running":
                self.client.unregister_worker_plugin(self.name)  # each worker closes its engine host
        except Exception:  # a cluster that is gone has nothing left to close
            pass
        self.client.close()
        self._close_cluster()

    def _close_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
