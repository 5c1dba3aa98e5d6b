"""The wire schema: round trips, and every way a message can be refused."""

from __future__ import annotations

import msgspec
import pytest

from sed import wire
from sed.errors import WireError


def _detection(**changes: object) -> wire.Detection:
    fields = {
        "detection_id": "pole-017:1700000000000000000:gunshot",
        "sensor_id": "pole-017",
        "label": wire.Label.GUNSHOT,
        "score": 0.97,
        "arrival_time_ns": 1_700_000_000_000_000_000,
        "arrival_uncertainty_ns": 120_000,
        "duration_ms": 310.0,
        "peak_dbfs": -12.5,
        "position": wire.Position(x_m=10.0, y_m=-3.5, z_m=6.0),
        "clock_status": wire.ClockStatus.SYNCED,
        "model_version": "sed-cnn 1.0",
    }
    fields.update(changes)
    return wire.Detection(**fields)  # type: ignore[arg-type]


MESSAGES = [
    _detection(),
    wire.Heartbeat(sensor_id="pole-017", sent_at_ns=5, clock_status=wire.ClockStatus.HOLDOVER, outbox_depth=3),
    wire.Ack(message_ids=["a", "clip:a"]),
    wire.EvidenceClip(detection_id="a", sensor_id="pole-017", start_time_ns=1, sample_rate_hz=16000, data=b"fLaC"),
    wire.Incident(
        incident_id="i1",
        label=wire.Label.SCREAM,
        score=0.8,
        origin_time_ns=7,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
        detection_ids=["a"],
        sensor_ids=["pole-017"],
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_returns_an_equal_typed_message(message: wire.Message) -> None:
    decoded = wire.decode(wire.encode(message))
    assert type(decoded) is type(message)
    assert decoded == message


def _raw(message: wire.Message) -> dict:
    return msgspec.msgpack.decode(wire.encode(message))


def test_missing_field_names_the_field_the_sensor_and_the_version() -> None:
    raw = _raw(_detection())
    del raw["arrival_time_ns"]
    with pytest.raises(WireError, match=r"detection from sensor 'pole-017'.*arrival_time_ns.*schema v1"):
        wire.decode(msgspec.msgpack.encode(raw))


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("score", 1.5, r"\$\.score"),
        ("arrival_time_ns", -1, r"\$\.arrival_time_ns"),
        ("label", "fireworks", r"\$\.label"),
        ("sensor_id", "pole 17; DROP", r"\$\.sensor_id"),
        ("position", {"x_m": "far"}, r"\$\.position"),
    ],
)
def test_out_of_range_or_mistyped_fields_are_refused(field: str, value: object, complaint: str) -> None:
    raw = _raw(_detection())
    raw[field] = value
    with pytest.raises(WireError, match=complaint):
        wire.decode(msgspec.msgpack.encode(raw))


def test_other_schema_version_is_refused_before_fields_are_read() -> None:
    raw = {"type": "detection", "schema_version": 2, "sensor_id": "pole-017"}
    with pytest.raises(WireError, match="schema v2; this node speaks v1"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_unknown_type_and_garbage_are_refused() -> None:
    with pytest.raises(WireError, match="unknown message type 'selfie'"):
        wire.decode(msgspec.msgpack.encode({"type": "selfie", "schema_version": 1}))
    with pytest.raises(WireError, match="undecodable"):
        wire.decode(b"\xc1\xff\x00")
    with pytest.raises(WireError, match="undecodable"):
        wire.decode(msgspec.msgpack.encode([1, 2, 3]))


def test_oversized_messages_are_refused_both_ways() -> None:
    with pytest.raises(WireError, match="exceeds limit"):
        wire.decode(b"\x00" * (wire.MAX_MESSAGE_BYTES + 1))
    clip = wire.EvidenceClip(
        detection_id="a", sensor_id="p", start_time_ns=0, sample_rate_hz=16000, data=b"x" * (wire.MAX_CLIP_BYTES + 1)
    )
    raw = _raw(clip)
    with pytest.raises(WireError, match=r"\$\.data"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_message_id_is_what_acks_name() -> None:
    detection = _detection()
    assert wire.message_id(detection) == detection.detection_id
    clip = MESSAGES[3]
    assert wire.message_id(clip) == "clip:a"
    assert wire.message_id(MESSAGES[1]) == ""
