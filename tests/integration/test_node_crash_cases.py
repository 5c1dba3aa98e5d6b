"""Every frame that once stopped all alerts (issue 11), sent to a real fusion node.

Each case sends the raw msgpack a registered sensor could send over its CURVE link, then
checks what a sensor relies on: the node is still running, the bad message was neither
stored nor acked, a durable message whose id is readable got a ``Reject`` (so the sensor
stops resending it), and a valid detection sent afterwards is acked and stored exactly
once (also when resent). The ZAP cases check that a junk key file and an unknown key
leave registered sensors able to (re)connect.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from benchmarks.fuzz_frames import encode_with_raw, nested_msgpack
from benchmarks.fuzz_link import SensorLink, valid_detection
from sed import wire
from tests.integration.wire_fuzz_support import NodeThread, store_url

pytestmark = pytest.mark.slow

SENSOR = "pole-1"
#: A node on loopback acks within milliseconds; this only bounds a failing test, s.
REPLY_TIMEOUT_S = 10.0
#: How long a frame that must get no Ack is watched for one, s.
NO_ACK_WATCH_S = 0.5
#: Distance of the "far away" position: a map northing typed as metres is of this order, m.
FAR_AWAY_M = 50_000.0


@pytest.fixture
def fusion_node(tmp_path: Path) -> Iterator[NodeThread]:
    node = NodeThread(tmp_path).start()
    yield node
    node.close()


def _detection_body(**fields: Any) -> dict[str, Any]:
    """A valid detection from ``pole-1`` as a msgpack map, with ``fields`` replaced."""
    detection = valid_detection(SENSOR, f"{SENSOR}:bad:{uuid.uuid4().hex[:8]}")
    return {**msgspec.to_builtins(detection), **fields}


def _clip_body(**fields: Any) -> dict[str, Any]:
    clip = wire.EvidenceClip(
        detection_id=f"{SENSOR}:bad:{uuid.uuid4().hex[:8]}",
        sensor_id=SENSOR,
        start_time_ns=time.time_ns(),
        sample_rate_hz=16_000,
        data=b"fLaC",
    )
    return {**msgspec.to_builtins(clip, builtin_types=(bytes,)), **fields}


def _send(link: SensorLink, data: bytes) -> None:
    link.send((data,))


def _assert_refused(node: NodeThread, link: SensorLink, message_id: str, *, rejected: bool) -> None:
    """The message was not stored, not acked, and (when ``rejected``) answered with a ``Reject``.

    Call it on a fresh node, before any valid detection was sent.
    """
    if rejected:
        assert link.wait_for(message_id, timeout_s=REPLY_TIMEOUT_S, reject=True), (
            f"no Reject for {message_id!r} within {REPLY_TIMEOUT_S} s (node alive: {node.alive()}, "
            f"failure: {node.failure!r})"
        )
        assert link.rejected[message_id], "a Reject must say why"
    else:
        link.drain(round(NO_ACK_WATCH_S * 1000))
    assert message_id not in link.acked_ids
    # Each case runs on a fresh node: nothing may have been stored yet (an id with NUL cannot even be queried).
    assert node.store.count_detections() == 0


def _assert_still_serves(node: NodeThread, link: SensorLink | None = None) -> None:
    """The node runs, acks a valid detection, and stores it once though it is sent twice."""
    assert node.alive(), f"the fusion node died: {node.failure!r}"
    link = link or node.link()
    good = valid_detection(SENSOR, f"{SENSOR}:good:{uuid.uuid4().hex[:8]}")
    for attempt in ("first", "resend"):
        link.acked_ids.discard(good.detection_id)
        link.send_message(good)
        assert link.wait_for(good.detection_id, timeout_s=REPLY_TIMEOUT_S), (
            f"{attempt}: valid detection not acked within {REPLY_TIMEOUT_S} s (node alive: {node.alive()}, "
            f"failure: {node.failure!r})"
        )
    assert node.stored(good.detection_id) == 1
    assert node.alive(), f"the fusion node died: {node.failure!r}"


# ---------------------------------------------------------------------------- int64 overflow


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("arrival_time_ns", 2**63),
        ("arrival_time_ns", 2**64 - 1),
        ("arrival_uncertainty_ns", 2**63),
    ],
)
def test_detection_integer_beyond_int64_is_rejected_and_the_node_serves_on(
    fusion_node: NodeThread, field: str, value: int
) -> None:
    link = fusion_node.link()
    body = _detection_body(**{field: value})
    _send(link, msgspec.msgpack.encode(body))
    _assert_refused(fusion_node, link, body["detection_id"], rejected=True)
    _assert_still_serves(fusion_node, link)


def test_clip_start_time_beyond_int64_is_rejected_and_the_node_serves_on(fusion_node: NodeThread) -> None:
    link = fusion_node.link()
    body = _clip_body(start_time_ns=2**63)
    _send(link, msgspec.msgpack.encode(body))
    _assert_refused(fusion_node, link, f"clip:{body['detection_id']}", rejected=True)
    assert link.stats.acks == 0
    _assert_still_serves(fusion_node, link)


# ---------------------------------------------------------------------------- non-finite positions


@pytest.mark.parametrize(
    ("axis", "value"),
    [
        ("x_m", float("nan")),
        ("y_m", float("nan")),
        ("z_m", float("nan")),
        ("x_m", float("inf")),
        ("y_m", float("-inf")),
        ("x_m", 1e300),
    ],
)
def test_detection_position_not_finite_or_absurd_is_rejected_and_the_node_serves_on(
    fusion_node: NodeThread, axis: str, value: float
) -> None:
    link = fusion_node.link()
    body = _detection_body()
    body["position"] = {**body["position"], axis: value}
    _send(link, msgspec.msgpack.encode(body))
    _assert_refused(fusion_node, link, body["detection_id"], rejected=True)
    _assert_still_serves(fusion_node, link)


def test_heartbeat_with_nan_position_is_dropped_and_the_node_serves_on(fusion_node: NodeThread) -> None:
    link = fusion_node.link()
    heartbeat = msgspec.to_builtins(
        wire.Heartbeat(
            sensor_id=SENSOR,
            sent_at_ns=time.time_ns(),
            clock_status=wire.ClockStatus.SYNCED,
            position=wire.Position(x_m=0.0, y_m=0.0),
        )
    )
    heartbeat["position"]["x_m"] = float("nan")
    _send(link, msgspec.msgpack.encode(heartbeat))
    _assert_still_serves(fusion_node, link)


def test_position_50_km_from_the_site_origin_is_rejected_and_the_node_serves_on(fusion_node: NodeThread) -> None:
    link = fusion_node.link()
    body = _detection_body(position={"x_m": 0.0, "y_m": FAR_AWAY_M, "z_m": 4.0})
    _send(link, msgspec.msgpack.encode(body))
    _assert_refused(fusion_node, link, body["detection_id"], rejected=True)
    assert "radius" in link.rejected[body["detection_id"]] or "site" in link.rejected[body["detection_id"]]
    _assert_still_serves(fusion_node, link)


def test_extreme_but_valid_positions_on_the_widest_site_do_not_stop_association(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once, ``int(inf)`` in the incident builder lost detections already stored and acked."""
    caplog.set_level(logging.WARNING, logger="sed")
    node = NodeThread(tmp_path, site={"radius_m": wire.MAX_HORIZONTAL_M}).start()
    try:
        edge_m = 0.999 * wire.MAX_HORIZONTAL_M
        links = {sensor: node.link(sensor) for sensor in ("pole-1", "pole-2")}
        for sensor, (x_m, y_m) in (("pole-1", (edge_m, 0.0)), ("pole-2", (-edge_m, 1e-3))):
            detection = valid_detection(sensor, f"{sensor}:edge", x_m=x_m, y_m=y_m)
            assert links[sensor].probe(detection, timeout_s=REPLY_TIMEOUT_S) is not None, f"{sensor} not acked"
            assert node.stored(detection.detection_id) == 1
        time.sleep(1.0)  # several turns of the loop: association and incident polls run on them
        _assert_still_serves(node, links["pole-1"])
        # Nothing quarantined or failed on the way (an acked detection is never dropped quietly).
        assert [r.getMessage() for r in caplog.records if r.name.startswith("sed")] == []
    finally:
        node.close()


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("container", ["array", "map"])
@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("path", [("aa_first",), ("zz_unknown",), ("position",), ("position", "x_m")], ids=".".join)
def test_msgpack_nested_deeply_is_dropped_and_the_node_serves_on(
    fusion_node: NodeThread, path: tuple[str, ...], depth: int, container: str
) -> None:
    """Nesting too deep to decode hides the envelope too, so nothing names a detection to
    reject (``sed.wire.rejectable_id``; no sensor of ours builds such a message): it is
    dropped, never stored nor acked, and the node goes on."""
    link = fusion_node.link()
    body = {"aa_first": None, **_detection_body()} if path == ("aa_first",) else _detection_body()
    _send(link, encode_with_raw(body, path, nested_msgpack(depth, container=container)))
    _assert_refused(fusion_node, link, body["detection_id"], rejected=False)
    _assert_still_serves(fusion_node, link)


# ---------------------------------------------------------------------------- control characters


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("text", ["a\x00b", "x\nFORGED log line"], ids=["nul", "newline"])
@pytest.mark.parametrize(
    ("field", "rejected"),
    [
        ("model_version", True),
        ("sensor_id", True),
        # The id itself is unusable: a Reject could not name it (and a sensor never makes one).
        ("detection_id", False),
        # An unknown message type is not a durable message: nothing to reject.
        ("type", False),
    ],
)
def test_control_characters_in_text_fields_are_refused_and_the_node_serves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: str, text: str, field: str, rejected: bool
) -> None:
    url, drop = store_url(backend, tmp_path)
    node = NodeThread(tmp_path, url=url).start()
    try:
        link = node.link()
        body = _detection_body()
        body[field] = f"{body[field]}{text}" if field != "sensor_id" else f"{SENSOR}.{text}"
        message_id = body["detection_id"]
        with caplog.at_level(logging.DEBUG):
            _send(link, msgspec.msgpack.encode(body))
            _assert_refused(node, link, message_id, rejected=rejected)
            _assert_still_serves(node, link)
        forged = [r.getMessage() for r in caplog.records if "\nFORGED" in r.getMessage()]
        assert forged == [], "wire content reached the log unescaped"
    finally:
        node.close()
        drop()


# ---------------------------------------------------------------------------- keys and ZAP


@pytest.mark.parametrize("junk_when", ["before start", "while running"])
def test_junk_key_file_and_an_unknown_key_leave_registered_sensors_connecting(tmp_path: Path, junk_when: str) -> None:
    node = NodeThread(tmp_path)
    junk = node.keys.authorized_keys_dir / "junk.key"
    if junk_when == "before start":
        junk.write_text("this is not a certificate\n")
    node.start()
    try:
        if junk_when == "while running":
            junk.write_text("this is not a certificate\n")
        rogue = node.link("rogue")
        probe = valid_detection("rogue", "rogue:1")
        rogue.send_message(probe)
        # The unknown key makes the node re-read the folder (and the rogue keeps retrying its
        # handshake): wait until the junk file was read and reported, so the case is not vacuous.
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not any("junk.key" in problem for problem in node.liveness.problems):
            assert time.monotonic() < deadline, f"junk.key never reported; problems: {node.liveness.problems}"
            rogue.drain(100)
        assert probe.detection_id not in rogue.acked_ids, "an unregistered key was served"
        assert node.stored(probe.detection_id) == 0
        # New connections after the refusal: the ZAP handler must still be answering.
        _assert_still_serves(node)
        second = node.link("pole-2")
        detection = valid_detection("pole-2", f"pole-2:{uuid.uuid4().hex[:8]}")
        second.send_message(detection)
        assert second.wait_for(detection.detection_id, timeout_s=REPLY_TIMEOUT_S), "pole-2 could not connect"
        assert node.stored(detection.detection_id) == 1
        assert not rogue.wait_for(probe.detection_id, timeout_s=NO_ACK_WATCH_S), "an unregistered key was served"
    finally:
        node.close()


# ---------------------------------------------------------------------------- stream ids


def test_a_sensor_cannot_open_unbounded_stream_ids(fusion_node: NodeThread) -> None:
    link = fusion_node.link()
    _assert_still_serves(fusion_node, link)  # its own id is the first of the ids it speaks for
    limit = fusion_node.config.fusion.max_streams_per_sensor
    detections = [valid_detection(f"{SENSOR}.{n}", f"{SENSOR}.{n}:1") for n in range(limit + 10)]
    for detection in detections:
        link.send_message(detection)
    accepted, refused = detections[: limit - 1], detections[limit - 1 :]
    for detection in accepted:
        assert link.wait_for(detection.detection_id, timeout_s=REPLY_TIMEOUT_S), f"{detection.detection_id} not acked"
    for detection in refused:
        assert link.wait_for(detection.detection_id, timeout_s=REPLY_TIMEOUT_S, reject=True), (
            f"{detection.detection_id} not rejected"
        )
        assert fusion_node.stored(detection.detection_id) == 0
    _assert_still_serves(fusion_node, link)
