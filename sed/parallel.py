"""Where a corpus run's independent tasks execute: this process, a local Dask cluster, or an existing one.

Benchmarks split their work into independent tasks (a clip, a piece of a long recording, a
cross-source fold) and hand them to :class:`Engine`. With one worker and no scheduler the
tasks run here, in order. Otherwise they are Dask tasks (``dask.distributed``): ``workers=N``
starts a local cluster of N single-threaded worker processes for the run and stops it after;
``scheduler="tcp://host:8786"`` uses a cluster someone started with Dask's own commands
(``dask scheduler``, ``dask worker``). Results come back in the order of the tasks, so a
report does not depend on which worker finished first.

A worker process that dies (killed, out of memory) is restarted by its nanny and its tasks
are run again elsewhere (Dask's ``allowed-failures``, 3 by default); a task that *raises*
is not retried: tasks catch the problems they can name (an unreadable file) and return them.
Task functions and their arguments must be importable and picklable: module-level functions
of :mod:`sed`, plain data, numpy arrays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

from sed.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 10.0
#: Dask settings for the clusters sed starts. Dask's workers start with MALLOC_TRIM_THRESHOLD_
#: at 64 KiB (to hand memory back to the system sooner); the detector allocates and frees
#: window-sized arrays all the time, and with that setting two processes scoring a 10-hour
#: file took 45-52 s instead of 38-43 s. Only the thread limits are kept. The worker's
#: housekeeping (a stack sample every 10 ms for Dask's profiler, a 20 ms tick) is slowed too.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def default_workers() -> int:
    """Cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def add_engine_arguments(parser: Any) -> None:
    """``--workers N`` and ``--scheduler ADDRESS`` on a command's argument parser."""
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help=f"worker processes of a local Dask cluster started for the run (default: all cores, here "
        f"{default_workers()}, when Dask is installed); 1 runs every task in this process",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="use an existing Dask cluster instead (e.g. tcp://10.0.0.5:8786, started with `dask scheduler` "
        "and `dask worker`); the workers need sed installed and the same paths to the data",
    )


def _workers(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 512:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a whole number of workers from 1 to 512")
    return value


def single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS/OpenMP to one thread, as Dask does in its workers (``pre-spawn-environ``).

    A matrix product split over threads sums in another order; one thread everywhere makes
    a task's floating-point results the same in this process and in any worker.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


class Engine:
    """Run independent tasks here or on Dask; a context manager that owns any cluster it starts.

    Parameters
    ----------
    workers : int >= 1, optional
        Local worker processes (default :func:`default_workers`). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing Dask scheduler.
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        self.scheduler = scheduler
        if workers is None and scheduler is None and not _has_dask():
            # the default (every core) needs the bench extra; without it, run here and say so
            print("note: Dask is not installed (pip install 'sed[bench]'): running every task in this process",
                  file=sys.stderr)  # fmt: skip
            workers = 1
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}; expected >= 1")
        self._cluster: Any = None
        self._client: Any = None
        self._config: contextlib.ExitStack | None = None
        #: Seconds to start (or reach) the cluster, and seconds spent in :meth:`map`.
        self.startup_s = 0.0
        self.tasks_s = 0.0

    @property
    def kind(self) -> str:
        """``sequential`` (this process), ``dask-local`` or ``dask`` (an existing cluster)."""
        if self.scheduler is not None:
            return "dask"
        return "sequential" if self.workers == 1 else "dask-local"

    def __enter__(self) -> Engine:
        if self.kind == "sequential":
            return self
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--workers/--scheduler need Dask: pip install 'sed[bench]' (or --workers 1 for this process only)"
            ) from None
        import dask

        started = time.perf_counter()
        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                raise ConfigError(f"--scheduler {self.scheduler}: no Dask scheduler answers ({exc})") from None
            self.workers = len(self._client.scheduler_info().get("workers", {})) or self.workers
        else:
            self._config = contextlib.ExitStack()
            self._config.enter_context(dask.config.set(LOCAL_CLUSTER_CONFIG))
            try:
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,  # one task per process: the tasks are CPU-bound Python/numpy
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._cluster)
            except BaseException:
                self.__exit__(None, None, None)  # no half-started cluster, no Dask settings left behind
                raise
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        if self._config is not None:
            self._config.close()
        self._client = self._cluster = self._config = None

    def provenance(self) -> dict[str, Any]:
        """What ran the tasks, for a report's provenance."""
        info: dict[str, Any] = {
            "engine": self.kind,
            "workers": self.workers,
            "startup_s": round(self.startup_s, 3),
            "tasks_s": round(self.tasks_s, 3),
        }
        if self.kind != "sequential":
            import dask
            import distributed

            info["versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
        if self.scheduler is not None:
            info["scheduler"] = self.scheduler
        return info

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (none when tasks run in this process)."""
        if self._client is None:
            return []
        return sorted(self._client.run(os.getpid).values())

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[T],
        *,
        desc: str,
        shared: dict[str, Any] | None = None,
        per_task: int = 1,
        cost: Sequence[float] | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> list[R]:
        """``[fn(item, **shared) for item in items]``, with a progress bar of tasks done.

        ``shared``: large arguments common to every task (e.g. training features), sent to
        each worker once rather than with every task. ``per_task``: items per Dask task, for
        items that take a few milliseconds each (a task costs the scheduler about a
        millisecond; Dask advises tasks of 100 ms or more). ``cost``: a rough size of each
        item (e.g. bytes of its file); on a cluster the largest go first, so that no long
        task starts last while the other workers idle. The results are in the order of
        ``items`` whatever the order run. ``on_done(n)`` is called after each task with the
        number of tasks done so far.
        """
        started = time.perf_counter()
        order = list(range(len(items)))
        if cost is not None and self._client is not None:
            if len(cost) != len(items):
                raise ValueError(f"{len(cost)} costs for {len(items)} items")
            order.sort(key=lambda k: -cost[k])
        try:
            done = self._map(
                fn, [items[k] for k in order], desc=desc, shared=shared, per_task=per_task, on_done=on_done
            )
        finally:
            self.tasks_s += time.perf_counter() - started
        results: list[Any] = [None] * len(items)
        for k, result in zip(order, done, strict=True):
            results[k] = result
        return results

    def _map(
        self,
        fn: Callable[..., R],
        items: Sequence[T],
        *,
        desc: str,
        shared: dict[str, Any] | None,
        per_task: int,
        on_done: Callable[[int], None] | None,
    ) -> list[R]:
        if per_task > 1 and self._client is not None:
            batches = [list(items[k : k + per_task]) for k in range(0, len(items), per_task)]
            done = self._map(
                _apply_each,
                batches,
                desc=f"{desc} ({per_task} per task)",
                shared={"fn": fn, **(shared or {})},
                per_task=1,
                on_done=on_done,
            )
            return [result for batch in done for result in batch]
        shared = dict(shared or {})
        bar = tqdm(total=len(items), desc=desc, unit="task", file=sys.stderr)
        try:
            if self._client is None:
                out = []
                with single_threaded_blas():  # as in a worker: same sums in the same order, same results
                    for item in items:
                        out.append(fn(item, **shared))
                        bar.update()
                        if on_done is not None:
                            on_done(len(out))
                return out
            from distributed import as_completed

            if shared:
                shared = {key: self._client.scatter(value, broadcast=True) for key, value in shared.items()}
            futures = self._client.map(fn, items, pure=False, **shared)
            position = {future.key: k for k, future in enumerate(futures)}
            results: list[Any] = [None] * len(items)
            for n_done, (future, result) in enumerate(as_completed(futures, with_results=True), start=1):
                results[position[future.key]] = result
                bar.update()
                if on_done is not None:
                    on_done(n_done)
            return results
        finally:
            bar.close()


def _apply_each(items: list[Any], *, fn: Callable[..., Any], **shared: Any) -> list[Any]:
    """One task of several items (:meth:`Engine.map` with ``per_task``)."""
    return [fn(item, **shared) for item in items]


__all__ = ["Engine", "add_engine_arguments", "default_workers", "single_threaded_blas"]
