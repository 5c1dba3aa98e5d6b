"""The quarantine table: whatever a message held is kept printable and bounded, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from sed import wire
from sed.store import Store
from sed.store import quarantine as quarantine_module
from sed.wire import printable
from tests.unit.store.test_store import detection


def test_entries_come_back_newest_first_filtered_and_paged(store: Store) -> None:
    for n in range(5):
        store.quarantine.add(
            sensor_id=f"pole-{n % 2}",
            received_at_ns=1000 + n,
            reason="store",
            detail=f"error {n}",
            payload=bytes([n]) * 10,
            message_type="Detection",
            message_id=f"pole-{n % 2}:{n}",
        )
    assert [e.message_id for e in store.quarantine.entries()] == [
        "pole-0:4",
        "pole-1:3",
        "pole-0:2",
        "pole-1:1",
        "pole-0:0",
    ]
    assert [e.message_id for e in store.quarantine.entries(sensor_id="pole-1")] == ["pole-1:3", "pole-1:1"]
    assert [e.message_id for e in store.quarantine.entries(limit=2, offset=1)] == ["pole-1:3", "pole-0:2"]
    assert store.quarantine.count() == 5 and store.quarantine.count(sensor_id="pole-0") == 3
    (newest,) = store.quarantine.entries(limit=1, payload_bytes=4)
    assert newest.payload == b"\x04" * 4 and newest.payload_bytes == 10  # only the asked-for bytes are read
    assert store.quarantine.entries(limit=1)[0].payload is None


def test_nul_bytes_control_characters_and_oversized_values_are_made_to_fit(store: Store) -> None:
    store.quarantine.add(
        sensor_id="pole-\x00\n" + "x" * 100,
        received_at_ns=2**70,
        reason="internal",
        detail="bad\x00value\r\nforged log line\u2028" + "y" * 1000,
        payload=b"\x00" * (wire.MAX_MESSAGE_BYTES + 10),
        message_id="id\x00",
    )
    (entry,) = store.quarantine.entries(payload_bytes=wire.MAX_MESSAGE_BYTES + 10)
    assert entry.sensor_id.startswith("pole-\\x00\\x0a") and len(entry.sensor_id) == 64
    assert entry.detail.startswith("bad\\x00value\\x0d\\x0aforged log line\\u2028") and len(entry.detail) == 500
    assert entry.message_id == "id\\x00" and entry.received_at_ns == 2**63 - 1
    assert entry.payload_bytes == wire.MAX_MESSAGE_BYTES


def test_the_table_keeps_only_the_newest_entries(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quarantine_module, "MAX_ROWS", 3)
    for n in range(5):
        store.quarantine.add(sensor_id="pole-1", received_at_ns=n, reason="store", detail="", payload=b"")
    assert [e.received_at_ns for e in store.quarantine.entries()] == [4, 3, 2]


def test_old_entries_expire(store: Store) -> None:
    for n in range(3):
        store.quarantine.add(sensor_id="pole-1", received_at_ns=n * 100, reason="store", detail="", payload=b"")
    assert store.quarantine.delete_received_before(150) == 2
    assert [e.received_at_ns for e in store.quarantine.entries()] == [200]


def test_an_unassigned_detection_can_be_unstored_but_not_one_an_incident_holds(store: Store) -> None:
    store.add_detection(detection(1), received_at_ns=1)
    assert store.discard_detection(detection(1).detection_id)
    assert store.count_detections() == 0
    assert store.add_detection(detection(1), received_at_ns=2)  # stored anew, not a duplicate
    incident = wire.Incident(
        incident_id="inc-1",
        label=wire.Label.GUNSHOT,
        score=0.9,
        origin_time_ns=1,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
        detection_ids=[detection(1).detection_id],
        sensor_ids=[detection(1).sensor_id],
    )
    store.save_incident(incident, updated_at_ns=3)
    assert not store.discard_detection(detection(1).detection_id)
    assert store.count_detections() == 1


def test_printable_escapes_what_a_log_line_or_a_text_column_cannot_hold() -> None:
    assert printable("ok\x00\n\x1b[31m\u200b\ud800", max_chars=100) == "ok\\x00\\x0a\\x1b[31m\\u200b\\ud800"
    assert printable("abcdef", max_chars=4) == "abc…"
