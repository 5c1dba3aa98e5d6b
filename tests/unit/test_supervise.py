"""Worker supervision: a dead or stalled loop is seen, reported once, and never mistaken for a stop."""

from __future__ import annotations

import threading
import time

import pytest

from sed.supervise import Liveness, Supervisor


def _loop(liveness: Liveness, stop: threading.Event, *, fail_after_turns: int | None = None) -> None:
    turns = 0
    while not stop.is_set():
        liveness.beat()
        turns += 1
        if fail_after_turns is not None and turns >= fail_after_turns:
            raise RuntimeError("injected fault")
        stop.wait(0.01)


def test_a_worker_that_raises_is_dead_and_the_supervisor_fails_once() -> None:
    calls = []
    worker, other = Liveness("feed"), Liveness("other")
    supervisor = Supervisor(worker, other, None)
    supervisor.on_failure(lambda: calls.append("failed"))
    stop = threading.Event()
    other.start(lambda: _loop(other, stop))
    worker.start(lambda: _loop(worker, stop, fail_after_turns=3)).join(timeout=5)
    assert supervisor.failed.is_set() and calls == ["failed"]
    assert supervisor.first_death is worker and worker.error == "RuntimeError: injected fault"
    statuses = {s.name: s for s in supervisor.statuses()}
    assert not statuses["feed"].alive and not statuses["feed"].ok and statuses["other"].ok
    late = []
    supervisor.on_failure(lambda: late.append("failed"))  # registered after the death: called at once
    assert late == ["failed"]
    stop.set()


def test_a_loop_that_returns_without_a_stop_request_is_a_death_but_a_requested_stop_is_not() -> None:
    ended, stopped = Liveness("ended"), Liveness("stopped")
    assert_failed = Supervisor(ended)
    assert_ok = Supervisor(stopped)
    ended.start(lambda: None).join(timeout=5)
    stop = threading.Event()
    thread = stopped.start(lambda: _loop(stopped, stop))
    stopped.stopping()
    stop.set()
    thread.join(timeout=5)
    assert assert_failed.failed.is_set() and ended.error == "its loop ended without a stop request"
    assert not assert_ok.failed.is_set() and stopped.error is None


def test_a_loop_that_stops_turning_is_stalled_after_its_bound_and_reports_its_backlog() -> None:
    worker = Liveness("webhooks", stall_after_s=0.2, backlog=lambda: 7)
    supervisor = Supervisor(worker)
    release = threading.Event()
    worker.start(lambda: release.wait(10) and None)  # alive, never turns
    try:
        (status,) = supervisor.statuses()
        assert status.alive and not status.stalled and status.backlog == 7
        time.sleep(0.3)
        (status,) = supervisor.statuses()
        assert status.stalled and status.behind_s >= 0.2 and not status.ok
    finally:
        worker.stopping()
        release.set()


def test_a_backlog_that_cannot_be_read_does_not_break_the_report() -> None:
    worker = Liveness("feed", backlog=lambda: 1 // 0)
    assert worker.status().backlog is None


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_even_a_base_exception_ending_a_worker_is_a_death(exc: BaseException) -> None:
    worker = Liveness("fusion")
    supervisor = Supervisor(worker)

    def die() -> None:
        raise exc

    worker.start(die).join(timeout=5)
    assert supervisor.failed.is_set() and worker.dead
