"""Durable outbox: a message is written here before it is sent, and removed on ack.

SQLite in WAL mode with ``synchronous=FULL``: a message that :meth:`Outbox.put` returned
from survives a killed process and a power cut. Resends back off exponentially per
message, each delay stretched by a random fraction (jitter) so that the poles of a city
whose acks were late do not all resend in the same instant; :meth:`Outbox.retry_all_now`
pulls every pending message forward when the link is known to be back (a reconnection),
never merely because an ack came.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

#: Each resend delay is stretched by up to this fraction of itself, at random.
DEFAULT_JITTER_FRACTION = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns INTEGER NOT NULL
)
"""


class Outbox:
    """A thread-safe persistent queue of encoded messages keyed by message id.

    Parameters
    ----------
    path : Path
        SQLite file; created with its parent folder when missing.
    resend_initial_s, resend_max_s : float > 0
        First resend delay and its cap; the delay doubles per attempt.
    jitter_fraction : float >= 0
        Each delay is stretched by a uniformly random fraction of itself up to this.
    """

    def __init__(
        self,
        path: Path,
        *,
        resend_initial_s: float = 0.5,
        resend_max_s: float = 30.0,
        jitter_fraction: float = DEFAULT_JITTER_FRACTION,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._initial_ns = int(resend_initial_s * 1e9)
        self._max_ns = int(resend_max_s * 1e9)
        self._jitter_fraction = jitter_fraction
        self._rng = random.Random()  # unseeded: two poles restarted together still spread out
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def put(self, message_id: str, payload: bytes) -> None:
        """Store a message for sending; a second put of the same id is ignored (idempotent)."""
        now = time.time_ns()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, payload, created_ns, next_attempt_ns) VALUES (?,?,?,?)",
                (message_id, payload, now, now),
            )

    def due(self, *, now_ns: int | None = None, limit: int = 64) -> list[tuple[str, bytes]]:
        """Messages whose next attempt is due, oldest first; each gets its next attempt scheduled."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, payload, attempts FROM outbox WHERE next_attempt_ns <= ? "
                "ORDER BY created_ns LIMIT ?",
                (now, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ns = ? WHERE message_id = ?",
                [(now + self._delay_ns(attempts), mid) for mid, _, attempts in rows],
            )
        return [(mid, payload) for mid, payload, _ in rows]

    def _delay_ns(self, attempts: int) -> int:
        """The wait before the next attempt after ``attempts`` earlier ones: doubling, capped, jittered."""
        nominal_ns = min(self._initial_ns << min(attempts, 30), self._max_ns)
        return int(nominal_ns * (1.0 + self._jitter_fraction * self._rng.random()))

    def remove(self, message_ids: list[str]) -> int:
        """Forget acknowledged messages; returns how many were pending."""
        if not message_ids:
            return 0
        with self._lock:
            cursor = self._db.executemany("DELETE FROM outbox WHERE message_id = ?", [(m,) for m in message_ids])
            return cursor.rowcount

    def retry_all_now(self) -> None:
        """Make every pending message due (the link is back)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET next_attempt_ns = 0, attempts = 0")

    def depth(self) -> int:
        """Number of messages not yet acknowledged."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["DEFAULT_JITTER_FRACTION", "Outbox"]
