"""Worker threads that say how they are doing, and take the process down when they die.

Every long-running loop of a server process (the fusion node, the live feed, the webhook
dispatcher, clip retention, the incident-feed subscriber, the HTTP server) runs in a thread
started by :meth:`Liveness.start`. Each turn of its loop calls :meth:`Liveness.beat`, so
``/healthz`` can tell how far behind it is. When the loop raises, or returns without a
stop having been asked for, the reason is logged and every :class:`Supervisor` watching
it sets ``failed``: the process's main thread then stops the rest and exits non-zero, so
systemd (``Restart=on-failure``) starts it again. A process that limps on without its
fusion thread would keep answering 200 while no alert is ever raised.

Example
-------
>>> supervisor = Supervisor()
>>> worker = Liveness("example", stall_after_s=None)
>>> supervisor.watch(worker)
>>> worker.start(lambda: None).join()  # returned without a stop request: a death
>>> supervisor.failed.is_set(), supervisor.statuses()[0].alive
(True, False)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sed.supervise")

#: A loop that has not turned for this long is stalled (``/healthz`` answers 503), s.
#: Generous: a loop may wait on a slow database (SQLite's busy timeout is 30 s).
DEFAULT_STALL_AFTER_S = 60.0
#: Longest a worker loop waits for work before it turns (and beats) again, s.
TURN_S = 1.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerStatus:
    """One worker as ``/healthz`` reports it."""

    name: str
    alive: bool  # started and not ended
    stalled: bool  # alive, but its loop has not turned for longer than its bound
    behind_s: float  # since its loop last turned (or since it started, before the first turn)
    backlog: int | None  # work waiting, where the worker has a queue
    problems: int  # conditions it works around (e.g. unreadable key files); details are in the log
    overload: str | None = None  # how far behind it is while it cannot keep up (nothing dropped)

    @property
    def ok(self) -> bool:
        return self.alive and not self.stalled


class Liveness:
    """The health record of one worker thread.

    Parameters
    ----------
    name : str
        Shown by ``/healthz`` and in log lines (``fusion``, ``live-feed`` …).
    stall_after_s : float > 0 or None
        The loop counts as stalled when it has not turned for this long; ``None`` for a
        thread without a loop of its own (the HTTP server).
    backlog : callable, optional
        Returns how much work is waiting (queue length), read when health is asked.
    """

    def __init__(
        self,
        name: str,
        *,
        stall_after_s: float | None = DEFAULT_STALL_AFTER_S,
        backlog: Callable[[], int] | None = None,
    ) -> None:
        self.name = name
        self.stall_after_s = stall_after_s
        self.backlog = backlog
        #: Conditions the worker works around but an operator should fix (set by the worker).
        self.problems: list[str] = []
        #: Set by the worker while it falls behind its input, e.g. "overloaded: association 2.1 s behind".
        self.overload: str | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._last_turn_s = time.monotonic()
        self._stop_requested = False
        self._ended = False
        self._on_death: list[Callable[[Liveness], None]] = []
        self._lock = threading.Lock()

    def start(self, target: Callable[[], None], *, thread_name: str | None = None) -> threading.Thread:
        """Run ``target`` (the worker's loop) in a daemon thread under supervision."""
        self._last_turn_s = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(target,), name=thread_name or f"sed-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        return self._thread

    def beat(self) -> None:
        """The loop turned: called once per iteration."""
        self._last_turn_s = time.monotonic()

    def stopping(self) -> None:
        """A stop was asked for: the thread's end from now on is no death."""
        self._stop_requested = True

    def on_death(self, callback: Callable[[Liveness], None]) -> None:
        """Call ``callback(self)`` when the thread dies (at once if it already has)."""
        with self._lock:
            dead = self._ended and self.error is not None
            if not dead:
                self._on_death.append(callback)
        if dead:
            callback(self)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def dead(self) -> bool:
        return self._ended and self.error is not None

    def status(self) -> WorkerStatus:
        behind_s = max(0.0, time.monotonic() - self._last_turn_s)
        alive = self._thread is not None and not self._ended
        backlog = None
        if self.backlog is not None:
            try:
                backlog = int(self.backlog())
            except Exception:  # a health probe must answer even if the queue cannot be read
                log.exception("reading the backlog of worker %s failed", self.name)
        return WorkerStatus(
            name=self.name,
            alive=alive,
            stalled=alive and self.stall_after_s is not None and behind_s > self.stall_after_s,
            behind_s=round(behind_s, 3),
            backlog=backlog,
            problems=len(self.problems),
            overload=self.overload,
        )

    def _run(self, target: Callable[[], None]) -> None:
        error = None
        try:
            target()
            if not self._stop_requested:
                error = "its loop ended without a stop request"
        except BaseException as exc:  # whatever ends a worker is reported; then the process ends
            error = f"{type(exc).__name__}: {exc}"
            log.critical("worker %s died: %r", self.name, error, exc_info=True)
        else:
            if error is not None:
                log.critical("worker %s died: %s", self.name, error)
        with self._lock:
            self.error = error
            self._ended = True
            callbacks = list(self._on_death) if error is not None else []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("death callback of worker %s failed", self.name)


class Supervisor:
    """Watches workers; ``failed`` is set as soon as any of them dies.

    Parameters
    ----------
    *workers : Liveness or None
        ``None`` entries (workers a configuration does not run) are skipped.
    """

    def __init__(self, *workers: Liveness | None) -> None:
        self.failed = threading.Event()
        self.first_death: Liveness | None = None
        self._workers: list[Liveness] = []
        self._on_failure: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.watch(*workers)

    def watch(self, *workers: Liveness | None) -> None:
        for worker in workers:
            if worker is not None:
                self._workers.append(worker)
                worker.on_death(self._died)

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once when the first worker dies (at once if one has)."""
        with self._lock:
            if not self.failed.is_set():
                self._on_failure.append(callback)
                return
        callback()

    def statuses(self) -> list[WorkerStatus]:
        return [worker.status() for worker in self._workers]

    def _died(self, worker: Liveness) -> None:
        with self._lock:
            if self.failed.is_set():
                return
            self.first_death = worker
            self.failed.set()
            callbacks = list(self._on_failure)
        for callback in callbacks:
            callback()


__all__ = ["DEFAULT_STALL_AFTER_S", "TURN_S", "Liveness", "Supervisor", "WorkerStatus"]
