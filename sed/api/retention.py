"""Clip retention: evidence (and quarantined messages, which may hold clips) older than
``store.clip_retention_days`` is deleted, checked periodically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sed.config import ServerConfig
from sed.store import Store
from sed.supervise import TURN_S, Liveness

log = logging.getLogger("sed.api.retention")

NS_PER_DAY = 86_400 * 10**9
#: One expiry pass may delete a month of clips on a slow disk: a stall only after this long, s.
RETENTION_STALL_AFTER_S = 600.0


def expire(store: Store, config: ServerConfig, *, now_ns: int) -> int:
    """Delete clips and quarantined messages received more than the retention period before
    ``now_ns``, and expired tokens.

    Returns
    -------
    int
        How many clips were deleted.
    """
    cutoff_ns = now_ns - int(config.store.clip_retention_days * NS_PER_DAY)
    n_clips = store.evidence.delete_received_before(cutoff_ns)
    store.quarantine.delete_received_before(cutoff_ns)
    store.accounts.delete_expired_tokens(now_ns=now_ns)
    if n_clips:
        log.info("deleted %d evidence clips older than %.1f days", n_clips, config.store.clip_retention_days)
    return n_clips


class RetentionJob:
    """Runs :func:`expire` at start and every ``store.retention_check_interval_s`` in a thread."""

    def __init__(self, store: Store, config: ServerConfig, *, on_deleted: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.config = config
        self.on_deleted = on_deleted
        self.n_deleted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: For ``/healthz``: the job's last turn.
        self.liveness = Liveness("retention", stall_after_s=RETENTION_STALL_AFTER_S)

    def start(self) -> None:
        self._thread = self.liveness.start(self._run, thread_name="sed-retention")

    def stop(self) -> None:
        self.liveness.stopping()
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        next_pass_s = time.monotonic()
        while not self._stop.is_set():
            self.liveness.beat()
            if time.monotonic() >= next_pass_s:
                next_pass_s = time.monotonic() + self.config.store.retention_check_interval_s
                try:
                    n_deleted = expire(self.store, self.config, now_ns=time.time_ns())
                    self.n_deleted += n_deleted
                    if self.on_deleted is not None and n_deleted:
                        self.on_deleted(n_deleted)
                except Exception:  # a database hiccup must not end retention for good
                    log.exception("clip retention failed; retrying at the next interval")
            # Turn (and beat) at least every TURN_S while waiting for the next pass.
            self._stop.wait(min(TURN_S, max(0.0, next_pass_s - time.monotonic())))


__all__ = ["RetentionJob", "expire"]
