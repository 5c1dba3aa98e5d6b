"""The wire schema: round trips, and every way a message can be refused."""

from __future__ import annotations

import math
import threading

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
    wire.Reject(message_ids=["a", "clip:a"], reason="position (2.5e+04, 0.0) m is 25000 m from the site origin"),
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
    with pytest.raises(WireError, match=r"detection from sensor 'pole-017'.*arrival_time_ns.*schema v2"):
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


@pytest.mark.parametrize("version", [0, 3, 99])
def test_other_schema_version_is_refused_before_fields_are_read(version: int) -> None:
    raw = {"type": "detection", "schema_version": version, "sensor_id": "pole-017"}
    with pytest.raises(WireError, match=rf"schema v{version}; this node speaks v2 and decodes v1, v2"):
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
    clip = MESSAGES[4]
    assert wire.message_id(clip) == "clip:a"
    assert wire.message_id(MESSAGES[1]) == ""


def _heartbeat_raw() -> dict:
    return _raw(wire.Heartbeat(sensor_id="pole-017", sent_at_ns=5, clock_status=wire.ClockStatus.SYNCED))


def _clip_raw() -> dict:
    return _raw(MESSAGES[4])


BIG = 2**63  # one past the largest signed 64-bit integer a database column holds (msgpack cannot go below -2**63)


@pytest.mark.parametrize(
    ("make_raw", "path", "value"),
    [
        (lambda: _raw(_detection()), ["arrival_time_ns"], BIG),
        (lambda: _raw(_detection()), ["arrival_uncertainty_ns"], 2**64 - 1),
        (_clip_raw, ["start_time_ns"], BIG),
        (_heartbeat_raw, ["sent_at_ns"], BIG),
        (_heartbeat_raw, ["clock_offset_ns"], BIG),
        (_heartbeat_raw, ["xruns"], BIG),
        (_heartbeat_raw, ["outbox_depth"], 2**64 - 1),
        (lambda: _raw(_detection()), ["schema_version"], BIG),
    ],
)
def test_integers_beyond_int64_are_refused(make_raw, path: list[str], value: int) -> None:
    raw = make_raw()
    raw[path[0]] = value
    with pytest.raises(WireError, match=rf"\$\.{path[0]}|schema v{value}"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_int64_extremes_are_accepted() -> None:
    raw = _heartbeat_raw()
    raw["clock_offset_ns"] = -(2**63)
    raw["sent_at_ns"] = 2**63 - 1
    beat = wire.decode(msgspec.msgpack.encode(raw))
    assert isinstance(beat, wire.Heartbeat)
    assert (beat.clock_offset_ns, beat.sent_at_ns) == (wire.INT64_MIN, wire.INT64_MAX)


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", [*NON_FINITE, 1e7 + 1, -1e300])
@pytest.mark.parametrize("axis", ["x_m", "y_m"])
def test_non_finite_or_implausible_horizontal_positions_are_refused(axis: str, value: float) -> None:
    raw = _raw(_detection())
    raw["position"][axis] = value
    with pytest.raises(WireError, match=rf"\$\.position\.{axis}"):
        wire.decode(msgspec.msgpack.encode(raw))


@pytest.mark.parametrize("value", [*NON_FINITE, 1e4 + 1, -1e4 - 1])
def test_non_finite_or_implausible_heights_are_refused(value: float) -> None:
    raw = _heartbeat_raw()
    raw["position"] = {"x_m": 0.0, "y_m": 0.0, "z_m": value}
    with pytest.raises(WireError, match=r"\$\.position\.z_m"):
        wire.decode(msgspec.msgpack.encode(raw))


@pytest.mark.parametrize(
    ("make_raw", "field", "value"),
    [
        (lambda: _raw(_detection()), "duration_ms", math.inf),
        (lambda: _raw(_detection()), "duration_ms", 1e9),
        (lambda: _raw(_detection()), "score", math.nan),
        (lambda: _raw(_detection()), "peak_dbfs", math.nan),
        (_heartbeat_raw, "clock_drift_ppm", math.nan),
        (_heartbeat_raw, "clock_drift_ppm", -math.inf),
        (_heartbeat_raw, "clock_drift_ppm", 2e6),
        (_heartbeat_raw, "cpu_load", math.inf),
        (_heartbeat_raw, "clipping_fraction", math.nan),
        (_heartbeat_raw, "input_rms_dbfs", math.inf),
    ],
)
def test_non_finite_or_implausible_floats_are_refused(make_raw, field: str, value: float) -> None:
    raw = make_raw()
    raw[field] = value
    with pytest.raises(WireError, match=rf"\$\.{field}"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_incident_uncertainty_and_covariance_must_be_finite() -> None:
    raw = _raw(MESSAGES[5])
    for field, value in (("uncertainty_m", math.inf), ("covariance_m2", [1.0, math.nan, 1.0])):
        bad = {**raw, field: value}
        with pytest.raises(WireError, match=rf"\$\.{field}"):
            wire.decode(msgspec.msgpack.encode(bad))


@pytest.mark.parametrize("text", ["a\x00b", "a\nb", "trailing\n", "a\rb", "\x1b[31m", "a\x85b", "a\u2028b"])
@pytest.mark.parametrize(
    ("make_raw", "field"),
    [
        (lambda: _raw(_detection()), "detection_id"),
        (lambda: _raw(_detection()), "model_version"),
        (lambda: _raw(_detection()), "sensor_id"),
        (_heartbeat_raw, "software_version"),
        (_clip_raw, "codec"),
        (lambda: _raw(MESSAGES[3]), "reason"),
    ],
)
def test_strings_with_nul_or_control_characters_are_refused(make_raw, field: str, text: str) -> None:
    raw = make_raw()
    raw[field] = text
    with pytest.raises(WireError, match=rf"\$\.{field}"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_strings_are_bounded() -> None:
    for make_raw, field, limit in (
        (lambda: _raw(_detection()), "detection_id", 96),
        (_heartbeat_raw, "software_version", 64),
        (lambda: _raw(MESSAGES[3]), "reason", wire.MAX_REASON_CHARS),
    ):
        raw = make_raw()
        raw[field] = "x" * limit
        wire.decode(msgspec.msgpack.encode(raw))
        raw[field] = "x" * (limit + 1)
        with pytest.raises(WireError, match=rf"\$\.{field}"):
            wire.decode(msgspec.msgpack.encode(raw))


def test_non_latin1_text_without_control_characters_is_accepted() -> None:
    detection = _detection(detection_id="pole-017:Plzeň:1", model_version="sed-cnn ✓")
    assert wire.decode(wire.encode(detection)) == detection


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _nested_raw_bytes(depth: int) -> bytes:
    """msgpack of ``depth`` nested one-element arrays (built without recursion)."""
    return b"\x91" * depth + b"\x90"


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_in_an_unknown_field_is_a_wire_error(depth: int) -> None:
    head = msgspec.msgpack.encode({**_raw(_detection()), "junk": None})
    data = head[:-1] + _nested_raw_bytes(depth)  # replace the trailing nil by the nested array
    with pytest.raises(WireError, match="nested too deeply"):
        wire.decode(data)
    # No sensor of ours sends such a message: it is dropped, never answered with a reject.
    assert wire.rejectable_id(data) is None


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_in_a_known_field_is_a_wire_error(depth: int) -> None:
    raw = _raw(_detection())
    del raw["position"]
    # The same detection with ``position`` last, holding an unknown key whose value nests ``depth`` deep.
    head = bytes([0x80 | (len(raw) + 1)]) + msgspec.msgpack.encode(raw)[1:]
    position = msgspec.msgpack.encode({"x_m": 0.0, "y_m": 0.0, "extra": None})[:-1] + _nested_raw_bytes(depth)
    with pytest.raises(WireError, match="nested too deeply"):
        wire.decode(head + msgspec.msgpack.encode("position") + position)
    incident = _raw(MESSAGES[5])
    incident["covariance_m2"] = _nested(500)
    with pytest.raises(WireError, match=r"\$\.covariance_m2"):
        wire.decode(msgspec.msgpack.encode(incident))


def test_deep_nesting_is_a_wire_error_in_a_worker_thread_too() -> None:
    """The fusion loop decodes in a thread, whose stack may be smaller than the main one."""
    data = msgspec.msgpack.encode({"type": "heartbeat", "schema_version": 1, "j": None})[:-1] + b"\x91" * 100_000
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            wire.decode(data + b"\x90")
        except BaseException as exc:  # the test reports whatever escapes
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], WireError)


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "selfie\nERROR forged line", "schema_version": 1},
        {"type": "detection", "schema_version": 1, "sensor_id": "pole\nERROR forged", "label": "x"},
        {**{"type": "detection", "schema_version": 1, "sensor_id": "pole-1"}, "label": "fire\nERROR forged"},
    ],
)
def test_wire_content_in_errors_is_escaped(raw: dict) -> None:
    with pytest.raises(WireError) as caught:
        wire.decode(msgspec.msgpack.encode(raw))
    assert "\n" not in str(caught.value)
    assert "\\nERROR forged" in str(caught.value)  # quoted, escaped, on the same line


def test_rejectable_id_names_what_the_sensor_resends() -> None:
    bad = _raw(_detection(detection_id="pole-017:9"))
    bad["position"]["x_m"] = math.nan
    assert wire.rejectable_id(msgspec.msgpack.encode(bad)) == "pole-017:9"
    clip = _clip_raw()
    clip["start_time_ns"] = BIG
    assert wire.rejectable_id(msgspec.msgpack.encode(clip)) == "clip:a"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "detection", "schema_version": 3, "detection_id": "a"},  # a newer sensor: accepted after an upgrade
        {"type": "heartbeat", "schema_version": 1, "detection_id": "a"},  # not durable
        {"type": "detection", "schema_version": 1, "detection_id": "a\nb"},  # not a valid id
        {"type": "detection", "schema_version": 1},
        [1, 2, 3],
    ],
)
def test_rejectable_id_is_none_when_nothing_can_be_named(raw: object) -> None:
    assert wire.rejectable_id(msgspec.msgpack.encode(raw)) is None


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\xc1\xff", b"\x81", b"\x81\xa4type", b"\xdf\xff\xff\xff\xff"])
def test_rejectable_id_is_none_for_junk(garbage: bytes) -> None:
    assert wire.rejectable_id(garbage) is None


def test_an_incident_without_a_priority_decodes_as_an_alert_and_a_bad_one_is_refused() -> None:
    # A fusion node from before the false-alarm policy sends no priority: its incidents were all alerts.
    raw = _raw(MESSAGES[-1])
    assert "priority" in raw
    del raw["priority"]
    assert wire.decode(msgspec.msgpack.encode(raw)).priority is wire.IncidentPriority.ALERT
    raw["priority"] = "urgent"
    with pytest.raises(WireError, match="priority"):
        wire.decode(msgspec.msgpack.encode(raw))


# ---------------------------------------------------------------- schema v2 and decoding v1

V1_DETECTION = {
    "type": "detection",
    "schema_version": 1,
    "detection_id": "pole-017:1:gunshot",
    "sensor_id": "pole-017",
    "label": "gunshot",
    "score": 0.9,
    "arrival_time_ns": 1,
    "arrival_uncertainty_ns": 100,
    "duration_ms": 300.0,
    "peak_dbfs": -10.0,
    "position": {"x_m": 1.0, "y_m": 2.0, "z_m": 3.0},
    "clock_status": "synced",
    "model_version": "sed-cnn 1.0",
}
V1_INCIDENT = {
    "type": "incident",
    "schema_version": 1,
    "incident_id": "i1",
    "label": "gunshot",
    "score": 0.9,
    "origin_time_ns": 5,
    "position": {"x_m": 10.0, "y_m": 20.0, "z_m": 0.0},
    "uncertainty_m": 3.0,
    "covariance_m2": [1.0, 0.0, 1.0],
    "detection_ids": ["a", "b", "c"],
    "sensor_ids": ["p1", "p2", "p3"],
    "status": "new",
    "created_at_ns": 6,
    "n_shots": 1,
    "priority": "alert",
}


def test_a_v1_detection_decodes_with_no_opinion_on_directness_and_re_encodes_as_v2() -> None:
    decoded = wire.decode(msgspec.msgpack.encode(V1_DETECTION))
    assert isinstance(decoded, wire.Detection)
    assert (decoded.detection_id, decoded.directness, decoded.schema_version) == ("pole-017:1:gunshot", 0.0, 2)
    assert _raw(decoded)["schema_version"] == 2


@pytest.mark.parametrize(
    ("position", "stage"),
    [({"x_m": 10.0, "y_m": 20.0, "z_m": 0.0}, wire.IncidentStage.LOCATED), (None, wire.IncidentStage.UNLOCATED)],
)
def test_a_v1_incident_is_located_when_it_has_a_position_else_unlocated(position: object, stage: object) -> None:
    raw = {**V1_INCIDENT, "position": position}
    if position is None:
        raw |= {"uncertainty_m": None, "covariance_m2": None}
    decoded = wire.decode(msgspec.msgpack.encode(raw))
    assert isinstance(decoded, wire.Incident)
    assert (decoded.stage, decoded.merged_into, decoded.revision) == (stage, None, 0)
    assert decoded.detection_ids == ["a", "b", "c"]


def test_v2_fields_round_trip() -> None:
    detection = _detection(directness=-4.25)
    assert wire.decode(wire.encode(detection)) == detection
    base = MESSAGES[-1]
    for changes in (
        {"stage": wire.IncidentStage.PROVISIONAL, "revision": 0},
        {"stage": wire.IncidentStage.LOCATED, "position": wire.Position(x_m=1, y_m=2), "revision": 3},
        {"stage": wire.IncidentStage.MERGED, "merged_into": "i0", "revision": 7},
    ):
        incident = msgspec.structs.replace(base, **changes)
        decoded = wire.decode(wire.encode(incident))
        assert decoded == incident
        assert _raw(incident)["stage"] == str(changes["stage"])


@pytest.mark.parametrize(
    ("make_raw", "field", "value"),
    [
        (lambda: _raw(_detection()), "directness", 50.5),
        (lambda: _raw(_detection()), "directness", -math.inf),
        (lambda: _raw(_detection()), "directness", math.nan),
        (lambda: _raw(MESSAGES[-1]), "revision", -1),
        (lambda: _raw(MESSAGES[-1]), "stage", "guessing"),
        (lambda: _raw(MESSAGES[-1]), "merged_into", "a\nb"),
    ],
)
def test_v2_fields_out_of_bounds_are_refused_naming_the_field(make_raw, field: str, value: object) -> None:
    raw = make_raw()
    raw[field] = value
    with pytest.raises(WireError, match=rf"\$\.{field}.*\(schema v2\)"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_merged_into_is_set_exactly_when_merged() -> None:
    raw = _raw(MESSAGES[-1]) | {"stage": "merged"}  # merged, but into nothing
    with pytest.raises(WireError, match="stage merged with merged_into=None"):
        wire.decode(msgspec.msgpack.encode(raw))
    raw = _raw(MESSAGES[-1]) | {"stage": "located", "merged_into": "i0"}
    with pytest.raises(WireError, match="stage located with merged_into='i0'"):
        wire.decode(msgspec.msgpack.encode(raw))
    raw = _raw(MESSAGES[-1]) | {"stage": "merged", "merged_into": "i1"}
    with pytest.raises(WireError, match="merged into itself"):
        wire.decode(msgspec.msgpack.encode(raw))
    with pytest.raises(ValueError, match="expected merged_into set exactly when the stage is merged"):
        msgspec.structs.replace(MESSAGES[-1], stage=wire.IncidentStage.MERGED)


def test_an_incident_built_without_a_stage_derives_it_from_its_position() -> None:
    assert MESSAGES[-1].stage is wire.IncidentStage.UNLOCATED
    located = msgspec.structs.replace(MESSAGES[-1], position=wire.Position(x_m=0, y_m=0), stage=None)
    assert located.stage is wire.IncidentStage.LOCATED


@pytest.mark.parametrize("version", [1, 2])
def test_rejectable_id_works_for_v1_and_v2(version: int) -> None:
    raw = {**V1_DETECTION, "schema_version": version, "score": 7.0}
    data = msgspec.msgpack.encode(raw)
    with pytest.raises(WireError, match=rf"\$\.score.*schema v{version}"):
        wire.decode(data)
    assert wire.rejectable_id(data) == "pole-017:1:gunshot"
