from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sed.capture.outbox import Outbox


def test_messages_survive_reopening_until_removed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.put("a", b"1")
    outbox.put("b", b"2")
    outbox.put("a", b"changed")  # same id: ignored, the first payload stays
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite")
    assert reopened.depth() == 2
    assert reopened.due(now_ns=time.time_ns()) == [("a", b"1"), ("b", b"2")]
    assert reopened.remove(["a", "unknown"]) == 1
    assert reopened.depth() == 1


def test_resends_back_off_and_retry_all_now_resets(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", resend_initial_s=1.0, resend_max_s=4.0, jitter_fraction=0.0)
    outbox.put("a", b"1")
    now = time.time_ns()
    assert [m for m, _ in outbox.due(now_ns=now)] == ["a"]
    assert outbox.due(now_ns=now + 900_000_000) == []  # first resend after 1 s
    assert [m for m, _ in outbox.due(now_ns=now + 1_000_000_000)] == ["a"]
    assert outbox.due(now_ns=now + 2_900_000_000) == []  # then 2 s later
    outbox.retry_all_now()
    assert [m for m, _ in outbox.due(now_ns=now + 2_900_000_000)] == ["a"]


def test_outbox_file_is_in_wal_mode(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.sqlite").put("a", b"1")
    mode = sqlite3.connect(tmp_path / "o.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_resend_delays_double_and_are_jittered_upward_within_the_fraction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", resend_initial_s=1.0, resend_max_s=4.0, jitter_fraction=0.25)
    ids = [f"m{k}" for k in range(200)]
    for message_id in ids:
        outbox.put(message_id, b"x")
    now = time.time_ns()
    for nominal_s in (1.0, 2.0, 4.0, 4.0):  # doubling, then capped
        assert len(outbox.due(now_ns=now, limit=1000)) == len(ids)
        db = sqlite3.connect(tmp_path / "o.sqlite")
        delays_s = [(at - now) / 1e9 for (at,) in db.execute("SELECT next_attempt_ns FROM outbox")]
        db.close()
        assert all(nominal_s <= d <= 1.25 * nominal_s for d in delays_s)
        assert max(delays_s) - min(delays_s) > 0.1 * nominal_s  # spread out, not one burst
        now += int(1.25 * nominal_s * 1e9) + 1
