"""Where cells run: in this process, in a local process pool, or on a Dask cluster.

Every executor yields one result dict per cell as cells finish (in any order); the
runner writes each to the store as it arrives. Timeouts and crashed workers become
error results, never exceptions. A run stopped by a signal stops its workers
(:func:`stop_on_signals`), and a process-pool worker exits when its parent dies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

from rdbench.cells import error_result, run_cell
from rdbench.spec import CellError, CellSpec

EXECUTORS = ("process", "serial", "dask")


class CellTimeout(CellError):
    """Raised inside a cell that ran past its time limit (serial executor)."""


class RunInterrupted(KeyboardInterrupt):
    """The run got a stop signal (SIGTERM, SIGINT, SIGHUP); raised in the main thread."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def stop_on_signals(signums: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Turn these signals into :class:`RunInterrupted` inside the block, so that the run
    unwinds through its executor's cleanup (which stops the workers); the first signal
    raises, later ones are ignored while it unwinds. The previous handlers come back after.
    Outside the main thread, where handlers cannot be set, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def _stop(signum: int, frame: Any) -> None:
        if not stopping:
            stopping.append(signum)
            raise RunInterrupted(signum)

    previous = {s: signal.signal(s, _stop) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def limit_threads(threads: int) -> None:
    """Keep one cell's numerical libraries to ``threads`` threads (no oversubscription)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def init_worker(threads: int, parent: int) -> None:
    """Process-pool initializer: limit the threads (:func:`limit_threads`) and exit when
    the process ``parent`` (the run) is gone, even if it was killed with ``kill -9``."""
    limit_threads(threads)

    def _watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=_watch, name="rdbench-parent-watch", daemon=True).start()


class Schedule:
    """Which cells may start: a cell waits until every cell it reads (``after``: cell id ->
    ids of cells in the same run) has finished, in whatever state. Cells keep their order."""

    def __init__(self, specs: Sequence[CellSpec], after: Mapping[str, Collection[str]] | None = None) -> None:
        self.waiting = list(specs)
        ids = {s.cell_id for s in specs}
        self.after = {cid: set(deps) & ids for cid, deps in (after or {}).items()}

    def ready(self, running: int = 0) -> list[CellSpec]:
        """The waiting cells whose cells read have finished, removed from the waiting list.
        With nothing ``running`` and nothing ready, every waiting cell (a cycle in ``after``
        must not stall the run)."""
        ready = [s for s in self.waiting if not self.after.get(s.cell_id)]
        if not ready and not running:
            ready = list(self.waiting)
        chosen = {s.cell_id for s in ready}
        self.waiting = [s for s in self.waiting if s.cell_id not in chosen]
        return ready

    def finished(self, cell_id: str) -> None:
        for deps in self.after.values():
            deps.discard(cell_id)


class Executor(ABC):
    @abstractmethod
    def run(
        self,
        specs: Sequence[CellSpec],
        timeout: float | None,
        out: str | None = None,
        after: Mapping[str, Collection[str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Run every cell; yield each result as it finishes. out: the run's output folder,
        where cells may read finished cells to reuse (:func:`rdbench.cells.estimate`).
        after: cell id -> the ids of the cells it reads, which must finish before it starts
        (:class:`Schedule`)."""


class SerialExecutor(Executor):
    """One cell after another in this process (easiest to debug; ``--executor serial``)."""

    def run(
        self,
        specs: Sequence[CellSpec],
        timeout: float | None,
        out: str | None = None,
        after: Mapping[str, Collection[str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        use_alarm = timeout is not None and threading.current_thread() is threading.main_thread()
        for spec in _in_order(Schedule(specs, after)):
            if not use_alarm:
                yield run_cell(spec, out)
                continue

            def _expire(signum: int, frame: Any) -> None:
                raise CellTimeout(f"cell timed out after {timeout:g} s")

            previous = signal.signal(signal.SIGALRM, _expire)
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
            try:
                result = run_cell(spec, out)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            yield result


class ProcessExecutor(Executor):
    """A local pool of worker processes (the default; ``--workers N``).

    Workers run one cell after another, so that starting Python and importing torch and
    the plugins is paid once per worker, not once per cell; a cell is a pure function of its
    spec (its own seeded generators), and each reports its own peak memory. A crash or a
    timeout kills only that worker, and the pool starts a fresh one. Numerical libraries are
    limited to ``threads_per_worker`` threads. Processes are spawned, not forked: the pool's
    own threads make fork unsafe, and a forked child could not use CUDA.
    """

    def __init__(self, workers: int, threads_per_worker: int | None = None) -> None:
        self.workers = max(1, int(workers))
        cores = os.cpu_count() or 1
        self.threads = threads_per_worker or max(1, cores // self.workers)

    def run(
        self,
        specs: Sequence[CellSpec],
        timeout: float | None,
        out: str | None = None,
        after: Mapping[str, Collection[str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        import multiprocessing

        from pebble import ProcessExpired, ProcessPool

        schedule = Schedule(specs, after)
        with ProcessPool(
            max_workers=self.workers,
            initializer=init_worker,
            initargs=(self.threads, os.getpid()),
            context=multiprocessing.get_context("spawn"),
        ) as pool:
            futures: dict[Any, CellSpec] = {}
            try:
                while True:
                    for spec in schedule.ready(running=len(futures)):
                        futures[pool.schedule(run_cell, args=(spec, out), timeout=timeout)] = spec
                    if not futures:
                        break
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        spec = futures.pop(future)
                        schedule.finished(spec.cell_id)
                        try:
                            yield future.result()
                        except FutureTimeout:
                            yield error_result(spec, f"CellTimeout: cell timed out after {timeout:g} s", timeout)
                        except ProcessExpired as exc:
                            yield error_result(
                                spec, f"CellError: worker process died ({exc}, exit code {exc.exitcode})"
                            )
                        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                            yield error_result(spec, f"{type(exc).__name__}: {exc}")
            finally:
                pool.stop()


class DaskExecutor(Executor):
    """Dask distributed: an existing scheduler (``--scheduler ADDRESS``) or a local cluster.

    At most one cell per worker thread is in flight, so a cell's time in flight is its
    running time; a cell past its time limit is recorded as timed out and cancelled (Dask
    cannot interrupt a running task: the worker finishes it and the result is dropped).
    """

    def __init__(self, scheduler: str | None = None, workers: int = 2) -> None:
        self.scheduler = scheduler
        self.workers = max(1, int(workers))

    def _client(self) -> Any:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise CellError("the Dask executor needs the dask extra: pip install 'rdbench[dask]'") from exc
        if self.scheduler:
            return Client(self.scheduler), None
        cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster

    def run(
        self,
        specs: Sequence[CellSpec],
        timeout: float | None,
        out: str | None = None,
        after: Mapping[str, Collection[str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        from distributed import TimeoutError as DaskTimeout
        from distributed import wait as dask_wait

        client, cluster = self._client()
        try:
            slots = max(1, sum(client.nthreads().values()))
            schedule = Schedule(specs, after)
            pending: list[CellSpec] = []
            running: dict[Any, tuple[CellSpec, float]] = {}
            while True:
                pending += schedule.ready(running=len(running) + len(pending))
                if not pending and not running:
                    break
                while pending and len(running) < slots:
                    spec = pending.pop(0)
                    future = client.submit(run_cell, spec, out, key=f"rdbench-cell-{spec.cell_id}", pure=False)
                    running[future] = (spec, time.monotonic())
                try:
                    done, _ = dask_wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED")
                except DaskTimeout:  # nothing finished within the second
                    done = set()
                for future in done:
                    spec, _started = running.pop(future)
                    schedule.finished(spec.cell_id)
                    try:
                        yield future.result()
                    except Exception as exc:  # noqa: BLE001 - worker lost, unpicklable result, ...
                        yield error_result(spec, f"{type(exc).__name__}: {exc}")
                if timeout is not None:
                    now = time.monotonic()
                    for future, (spec, started) in list(running.items()):
                        if now - started > timeout:
                            running.pop(future)
                            schedule.finished(spec.cell_id)
                            future.cancel()
                            yield error_result(spec, f"CellTimeout: cell timed out after {timeout:g} s", now - started)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _in_order(schedule: Schedule) -> Iterator[CellSpec]:
    """One cell at a time, each after the cells it reads (a serial run)."""
    while batch := schedule.ready():
        for spec in batch:
            schedule.finished(spec.cell_id)
        yield from batch


def make_executor(name: str, *, workers: int, scheduler: str | None = None) -> Executor:
    if name == "serial":
        return SerialExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
