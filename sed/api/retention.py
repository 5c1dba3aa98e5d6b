"""Clip retention: evidence older than ``store.clip_retention_days`` is deleted, checked periodically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sed.config import ServerConfig
from sed.store import Store

log = logging.getLogger("sed.api.retention")

NS_PER_DAY = 86_400 * 10**9


def expire(store: Store, config: ServerConfig, *, now_ns: int) -> int:
    """Delete clips received more than the retention period before ``now_ns``, and expired tokens.

    Returns
    -------
    int
        How many clips were deleted.
    """
    cutoff_ns = now_ns - int(config.store.clip_retention_days * NS_PER_DAY)
    n_clips = store.evidence.delete_received_before(cutoff_ns)
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
        self._thread = threading.Thread(target=self._run, name="sed-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n_deleted = expire(self.store, self.config, now_ns=time.time_ns())
                self.n_deleted += n_deleted
                if self.on_deleted is not None and n_deleted:
                    self.on_deleted(n_deleted)
            except Exception:  # a database hiccup must not end retention for good
                log.exception("clip retention failed; retrying at the next interval")
            self._stop.wait(self.config.store.retention_check_interval_s)


__all__ = ["RetentionJob", "expire"]
