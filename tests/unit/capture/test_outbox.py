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
    outbox = Outbox(tmp_path / "o.sqlite", resend_initial_s=1.0, resend_max_s=4.0)
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
