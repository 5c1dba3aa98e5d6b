"""Frames a fuzzing sensor throws at a fusion node (sent by :mod:`fuzz_link`).

Shared by the property-based test (``tests/integration/test_wire_fuzz.py``) and the long
run (``benchmarks/fuzz_wire.py``), so both send the same storm. Needs ``hypothesis`` (the
``dev`` extra).

Every frame starts from a valid message of the current schema (a detection, an evidence
clip or a heartbeat, built from :mod:`sed.wire` structs, so the base follows the schema as
it changes) from the registered sensor that sends it, and is then broken in one way, named
by its mutation class (:data:`MUTATIONS`):

``valid``           unchanged (the control: must be acked)
``int_boundary``    an integer field at or past an int64 / uint64 edge (2^63, 2^64 - 1, -1, …)
``float_special``   a float field NaN, ±inf, 1e300, subnormal, -0.0 or any float
``far_position``    a position far beyond any site radius (20 km … 1e12 m)
``odd_string``      a text field with NUL, CR/LF, ANSI escapes, non-ASCII, empty or 100 kB text
``wrong_type``      a field replaced by a value of another type (None, list, map, bytes, …)
``extra_field``     an unknown field holding an arbitrary (nested) value
``missing_field``   a field removed
``deep_nesting``    arrays or maps nested 64 … 200,000 deep, in an unknown or a known field
``foreign_message`` a message type a sensor never sends, an unknown tag or schema version
``spoofed_sensor``  another sensor's id, an unregistered id, or one of thousands of stream ids
``truncated``       a valid frame cut short
``bit_flip``        a valid frame with 1-16 bits flipped
``random_bytes``    bytes with no structure at all
``multipart``       a valid frame with extra ZeroMQ frames before or after it

Frames larger than the wire limit are left out on purpose: ZeroMQ's ``MAXMSGSIZE``
disconnects such a peer, which would measure reconnects rather than the node's loop
(``tests/unit/fusion/test_receiver.py`` covers that case).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import msgspec
from hypothesis import strategies as st

from sed import wire

#: Every mutation class a frame can belong to, in the order of the module docstring.
MUTATIONS = (
    "valid",
    "int_boundary",
    "float_special",
    "far_position",
    "odd_string",
    "wrong_type",
    "extra_field",
    "missing_field",
    "deep_nesting",
    "foreign_message",
    "spoofed_sensor",
    "truncated",
    "bit_flip",
    "random_bytes",
    "multipart",
)

#: Arrival times near "now" (2026), integer UTC ns: what a real sensor sends.
_NOW_NS = 1_790_000_000_000_000_000
#: Valid positions of the base messages lie within this distance of the site origin, m.
_NEAR_M = 1_000.0

_INT_EDGES = (2**63, 2**63 - 1, 2**63 + 1, 2**64 - 1, -1, -(2**63), -(2**63) + 1, 0, 2**31, 2**32, 2**53 + 1)
_FLOAT_EDGES = (math.nan, math.inf, -math.inf, 1e300, -1e300, 1.7976931348623157e308, 5e-324, -0.0, 1e7 + 1, -1e7 - 1)
_ODD_TEXT = (
    "",
    "\x00",
    "a\x00b",
    "line\nbreak",
    "\r\nINFO forged log line",
    "\x1b[31mred\x1b[0m",
    "\u2028\u2029",
    "é",
    "💥",
    "A" * 65,
    "A" * 97,
    "A" * 100_000,
    "../../etc/passwd",
    "'; DROP TABLE detections;--",
    "%s%n%x",
)
_WRONG_VALUES: tuple[Any, ...] = (None, True, False, [], {}, b"\x00\xff", "12", 1.5, -1, [1, 2, 3], {"x_m": 1})

#: Fields of each base message by the kind of value they hold; tuples are paths into the map.
_INT_FIELDS = {
    "detection": [("arrival_time_ns",), ("arrival_uncertainty_ns",), ("schema_version",)],
    "evidence_clip": [("start_time_ns",), ("sample_rate_hz",), ("schema_version",)],
    "heartbeat": [("sent_at_ns",), ("clock_offset_ns",), ("xruns",), ("clock_jumps",), ("outbox_depth",)],
}
_FLOAT_FIELDS = {
    "detection": [("score",), ("duration_ms",), ("peak_dbfs",), ("position", "x_m"), ("position", "y_m"),
                  ("position", "z_m")],
    "heartbeat": [("position", "x_m"), ("position", "y_m"), ("position", "z_m"), ("input_rms_dbfs",),
                  ("input_peak_dbfs",), ("clipping_fraction",), ("clock_drift_ppm",), ("cpu_load",)],
}  # fmt: skip
_STR_FIELDS = {
    "detection": [("detection_id",), ("sensor_id",), ("label",), ("clock_status",), ("model_version",), ("type",)],
    "evidence_clip": [("detection_id",), ("sensor_id",), ("codec",), ("type",)],
    "heartbeat": [("sensor_id",), ("clock_status",), ("software_version",), ("model_version",), ("type",)],
}
_KINDS = ("detection", "evidence_clip", "heartbeat")
_SERIALS = itertools.count()

#: Stands for a value spliced in as raw msgpack after encoding (nesting too deep to encode).
_PLACEHOLDER = "\x00sed-fuzz-placeholder\x00"
_PLACEHOLDER_BYTES = msgspec.msgpack.encode(_PLACEHOLDER)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One fuzzed message as ZeroMQ frames, with the class of its mutation.

    ``message_id`` is the id an ``Ack`` or ``Reject`` for it would name, when the frame
    still carries a readable one.
    """

    mutation: str
    parts: tuple[bytes, ...]
    message_id: str | None = None

    def describe(self, limit: int = 160) -> str:
        """One line for a report: class, sizes and the start of each frame (escaped)."""
        heads = ", ".join(f"{len(p)} B {p[:limit]!r}" for p in self.parts)
        return f"{self.mutation}: {heads}"


# ---------------------------------------------------------------------------- base messages


def _base(draw: st.DrawFn, kind: str, sensor_id: str) -> dict[str, Any]:
    """A valid message of ``kind`` from ``sensor_id`` as a plain map (what msgpack carries)."""
    # Unique ids, not drawn ones (hypothesis draws 0 and 1 over and over): each valid message
    # must then be acked on its own merit, never by the ack of an earlier frame with its id.
    # Fixed width, so a frame's length (and so what hypothesis draws for it, e.g. which bit
    # to flip) never depends on the counter: hypothesis refuses inconsistent generation.
    detection_id = f"{sensor_id}:fuzz:{next(_SERIALS):012d}"
    near = st.floats(min_value=-_NEAR_M, max_value=_NEAR_M, allow_nan=False)
    position = wire.Position(x_m=draw(near), y_m=draw(near), z_m=draw(st.floats(min_value=0.0, max_value=30.0)))
    clock = draw(st.sampled_from(list(wire.ClockStatus)))
    message: wire.Message
    if kind == "detection":
        message = wire.Detection(
            detection_id=detection_id,
            sensor_id=sensor_id,
            label=draw(st.sampled_from(list(wire.Label))),
            score=draw(st.floats(min_value=0.0, max_value=1.0)),
            arrival_time_ns=_NOW_NS + draw(st.integers(min_value=0, max_value=10**15)),
            arrival_uncertainty_ns=draw(st.integers(min_value=0, max_value=10**7)),
            duration_ms=draw(st.floats(min_value=0.0, max_value=5_000.0)),
            peak_dbfs=draw(st.floats(min_value=-100.0, max_value=0.0)),
            position=position,
            clock_status=clock,
            model_version="fuzz-1",
        )
    elif kind == "evidence_clip":
        message = wire.EvidenceClip(
            detection_id=detection_id,
            sensor_id=sensor_id,
            start_time_ns=_NOW_NS + draw(st.integers(min_value=0, max_value=10**15)),
            sample_rate_hz=draw(st.sampled_from([16_000, 48_000])),
            data=b"fLaC" + draw(st.binary(max_size=256)),
        )
    else:
        message = wire.Heartbeat(
            sensor_id=sensor_id,
            sent_at_ns=_NOW_NS + draw(st.integers(min_value=0, max_value=10**15)),
            clock_status=clock,
            position=position,
            software_version="fuzz",
        )
    return msgspec.to_builtins(message, builtin_types=(bytes,))  # clip data stays msgpack bin, not base64


def _message_id(body: dict[str, Any]) -> str | None:
    detection_id = body.get("detection_id")
    if not isinstance(detection_id, str):
        return None
    return f"clip:{detection_id}" if body.get("type") == "evidence_clip" else detection_id


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        inner = body.get(key)
        if not isinstance(inner, dict):
            inner = body[key] = {}
        body = inner
    body[path[-1]] = value


def _encode(body: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode(body)


def _paths(body: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every field of a base message, nested ones (``position.x_m``) included."""
    paths: list[tuple[str, ...]] = []
    for key, value in body.items():
        paths.append((key,))
        if isinstance(value, dict):
            paths.extend((key, inner) for inner in value)
    return paths


# ---------------------------------------------------------------------------- values

_ints = st.one_of(st.sampled_from(_INT_EDGES), st.integers(min_value=-(2**63), max_value=2**64 - 1))
_floats = st.one_of(st.sampled_from(_FLOAT_EDGES), st.floats())
_texts = st.one_of(st.sampled_from(_ODD_TEXT), st.text(max_size=200))
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, st.text(max_size=40), st.binary(max_size=40))
_anything = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers(min_value=-(2**63), max_value=2**64 - 1)), inner,
                        max_size=4),
    ),
    max_leaves=24,
)  # fmt: skip


def nested_msgpack(depth: int, *, container: str = "array") -> bytes:
    """msgpack of ``depth`` one-element arrays (``container="map"``: one-key maps) around nil.

    Written by hand: no encoder builds it, which is the point.
    """
    return (b"\x91" if container == "array" else b"\x81\xa1k") * depth + b"\xc0"


def encode_with_raw(body: dict[str, Any], path: tuple[str, ...], raw: bytes) -> bytes:
    """msgpack of ``body`` with the field at ``path`` set to the already encoded ``raw``."""
    body = msgspec.msgpack.decode(msgspec.msgpack.encode(body))  # a copy: the caller's map stays as it was
    _set(body, path, _PLACEHOLDER)
    return _encode(body).replace(_PLACEHOLDER_BYTES, raw, 1)


# ---------------------------------------------------------------------------- mutations


@st.composite
def _mutated(draw: st.DrawFn, sensor_id: str, other_sensor_ids: tuple[str, ...]) -> Frame:
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation in ("float_special", "far_position"):
        kind = draw(st.sampled_from(sorted(_FLOAT_FIELDS)))
    else:
        kind = draw(st.sampled_from(_KINDS))
    body = _base(draw, kind, sensor_id)
    if mutation == "int_boundary":
        _set(body, draw(st.sampled_from(_INT_FIELDS[kind])), draw(_ints))
    elif mutation == "float_special":
        _set(body, draw(st.sampled_from(_FLOAT_FIELDS[kind])), draw(_floats))
    elif mutation == "far_position":
        distance_m = draw(
            st.one_of(st.sampled_from([20_001.0, 50_000.0, 1e6, 1e7, 1e7 + 1, 1e12]), st.floats(2e4, 1e15))
        )
        angle_rad = draw(st.floats(min_value=0.0, max_value=2 * math.pi))
        body["position"] = {
            "x_m": distance_m * math.cos(angle_rad),
            "y_m": distance_m * math.sin(angle_rad),
            "z_m": 0.0,
        }
    elif mutation == "odd_string":
        path = draw(st.sampled_from(_STR_FIELDS[kind]))
        text = draw(_texts)
        if path == ("sensor_id",) and draw(st.booleans()):
            text = f"{sensor_id}.{text}"  # as a stream id of this sensor, it gets past the spoofing check
        _set(body, path, text)
    elif mutation == "wrong_type":
        _set(body, draw(st.sampled_from(_paths(body))), draw(st.one_of(st.sampled_from(_WRONG_VALUES), _anything)))
    elif mutation == "extra_field":
        body[draw(st.text(max_size=30).filter(lambda key: key not in body))] = draw(_anything)
    elif mutation == "missing_field":
        path = draw(st.sampled_from(_paths(body)))
        (body[path[0]] if len(path) == 2 else body).pop(path[-1])
    elif mutation == "deep_nesting":
        depth = draw(st.sampled_from([64, 500, 1_000, 10_000, 200_000]))
        raw = nested_msgpack(depth, container=draw(st.sampled_from(["array", "map"])))
        path = draw(st.one_of(st.just(("zz_unknown",)), st.sampled_from(_paths(body))))
        data = encode_with_raw(body, path, raw)
    elif mutation == "foreign_message":
        return _foreign(draw, body)
    elif mutation == "spoofed_sensor":
        stream = st.integers(min_value=0, max_value=10**6).map(lambda n: f"{sensor_id}.{n}")
        body["sensor_id"] = draw(st.one_of(st.sampled_from([*other_sensor_ids, "rogue", "unregistered-9"]), stream))
    if mutation != "deep_nesting":
        data = _encode(body)
    if mutation == "truncated":
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif mutation == "bit_flip":
        flipped = bytearray(data)
        for bit in draw(st.lists(st.integers(min_value=0, max_value=8 * len(data) - 1), min_size=1, max_size=16)):
            flipped[bit // 8] ^= 1 << (bit % 8)
        data = bytes(flipped)
    elif mutation == "random_bytes":
        data = draw(st.binary(max_size=4096))
    elif mutation == "multipart":
        extra = draw(st.lists(st.binary(max_size=64), min_size=1, max_size=3))
        parts = (*extra, data) if draw(st.booleans()) else (data, *extra)
        return Frame(mutation, parts, _message_id(body))
    return Frame(mutation, (data,), _message_id(body))


def _foreign(draw: st.DrawFn, body: dict[str, Any]) -> Frame:
    """A message type a sensor never sends, or a base message with a bad tag or schema version."""
    choice = draw(st.sampled_from(["ack", "reject", "incident", "tag", "schema_version"]))
    if choice == "ack":
        return Frame("foreign_message", (wire.encode(wire.Ack(message_ids=[body.get("detection_id", "x")])),))
    if choice == "reject":
        reject = wire.Reject(message_ids=[body.get("detection_id", "x")], reason="a sensor never sends this")
        return Frame("foreign_message", (wire.encode(reject),))
    if choice == "incident":
        incident = wire.Incident(
            incident_id="fuzz-incident",
            label=wire.Label.GUNSHOT,
            score=0.9,
            origin_time_ns=_NOW_NS,
            position=None,
            uncertainty_m=None,
            covariance_m2=None,
            detection_ids=[],
            sensor_ids=[],
        )
        return Frame("foreign_message", (wire.encode(incident),))
    if choice == "tag":
        body["type"] = draw(st.one_of(st.sampled_from(["ack", "incident", "reject", "", "DETECTION", 1, None]), _texts))
    else:
        unknown = [0, wire.SCHEMA_VERSION + 1, -1, 2**63, "1", None, 1.0]
        body["schema_version"] = draw(st.one_of(st.sampled_from(unknown), _ints))
    return Frame("foreign_message", (_encode(body),), _message_id(body))


def frames(sensor_id: str, other_sensor_ids: tuple[str, ...] = ()) -> st.SearchStrategy[Frame]:
    """Fuzzed frames from the registered sensor ``sensor_id``.

    Parameters
    ----------
    sensor_id : str
        The sensor whose CURVE key sends them (its id is in every base message).
    other_sensor_ids : tuple of str
        Other registered sensors, for ``spoofed_sensor`` frames.
    """
    return _mutated(sensor_id, other_sensor_ids)


__all__ = ["MUTATIONS", "Frame", "encode_with_raw", "frames", "nested_msgpack"]
