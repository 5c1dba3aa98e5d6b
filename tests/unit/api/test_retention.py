"""Retention: quarantined messages (which may hold clip audio) expire with the clips; the job keeps turning."""

from __future__ import annotations

import time
from collections.abc import Callable

from sed.api.retention import NS_PER_DAY, RetentionJob, expire
from sed.config import ServerConfig
from sed.store import Store


def test_quarantined_messages_older_than_the_clip_retention_are_deleted(
    make_config: Callable[..., ServerConfig], store: Store
) -> None:
    config = make_config(store={"clip_retention_days": 7})
    now_ns = time.time_ns()
    for age_days in (8, 6):
        store.quarantine.add(
            sensor_id="pole-1", received_at_ns=now_ns - age_days * NS_PER_DAY, reason="store", detail="", payload=b"x"
        )
    expire(store, config, now_ns=now_ns)
    assert [round((now_ns - e.received_at_ns) / NS_PER_DAY) for e in store.quarantine.entries()] == [6]


def test_the_job_turns_while_it_waits_for_the_next_pass(config: ServerConfig, store: Store) -> None:
    job = RetentionJob(store, config)  # retention_check_interval_s is an hour by default
    job.start()
    try:
        time.sleep(1.5)
        status = job.liveness.status()
        assert status.alive and status.behind_s < 1.2  # it beat during the wait, not only once an hour
    finally:
        job.stop()
    assert not job.liveness.dead
