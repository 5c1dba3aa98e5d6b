"""Every message that crosses a process boundary, in one versioned schema.

Messages are ``msgspec.Struct`` s encoded as msgpack, tagged by a ``type`` field so
:func:`decode` returns a typed object, never a tuple whose order one must remember.
Physical fields carry their unit in the name (``arrival_time_ns`` is integer UTC
nanoseconds, ``uncertainty_m`` metres). The schema version travels in every message and
is checked, together with the size limit, before anything else is decoded.

Example
-------
>>> from sed import wire
>>> hb = wire.Heartbeat(sensor_id="pole-017", sent_at_ns=1, clock_status=wire.ClockStatus.SYNCED)
>>> wire.decode(wire.encode(hb)) == hb
True
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from sed.errors import WireError

SCHEMA_VERSION = 1
#: Largest message accepted on the wire, bytes. An evidence clip (3 s, 16 kHz, FLAC) is ~60 kB.
MAX_MESSAGE_BYTES = 1 << 20
#: Largest evidence clip payload, bytes.
MAX_CLIP_BYTES = 768 * 1024

#: Default endpoint the fusion node binds for sensors (ROUTER, CURVE server).
DEFAULT_FUSION_ENDPOINT = "tcp://127.0.0.1:5750"

SensorId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=96)]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
Dbfs = Annotated[float, msgspec.Meta(ge=-200.0, le=10.0)]


class Label(enum.StrEnum):
    """Event classes the system alerts on."""

    GUNSHOT = "gunshot"
    SCREAM = "scream"
    GLASS_BREAK = "glass_break"


class ClockStatus(enum.StrEnum):
    """How far a sensor can vouch for its timestamps."""

    SYNCED = "synced"  # disciplined (GPS/PTP/NTP) and no jump since the stream started
    HOLDOVER = "holdover"  # was synced; drifting on its own oscillator since
    UNSYNCED = "unsynced"  # never synced, or a jump was detected: times are not trustworthy


class IncidentStatus(enum.StrEnum):
    """Life cycle of an incident as operators review it."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A point in the site's local metric frame (east, north, up), metres."""

    x_m: float
    y_m: float
    z_m: float = 0.0


class _Message(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    schema_version: int = SCHEMA_VERSION


class Detection(_Message, tag="detection"):
    """One sensor heard one event.

    ``arrival_time_ns`` is the onset of the direct sound at the microphone, integer UTC
    nanoseconds; ``arrival_uncertainty_ns`` its 1-sigma uncertainty. ``clock_status``
    other than ``synced`` means the time must not be used for localisation.
    """

    detection_id: MessageId
    sensor_id: SensorId
    label: Label
    score: Score
    arrival_time_ns: NonNegInt
    arrival_uncertainty_ns: NonNegInt
    duration_ms: NonNegFloat
    peak_dbfs: Dbfs
    position: Position
    clock_status: ClockStatus
    model_version: Annotated[str, msgspec.Meta(max_length=64)] = ""


class EvidenceClip(_Message, tag="evidence_clip"):
    """A short compressed clip around a detection; the only audio that leaves a sensor."""

    detection_id: MessageId
    sensor_id: SensorId
    start_time_ns: NonNegInt
    sample_rate_hz: Annotated[int, msgspec.Meta(ge=8000, le=96000)]
    codec: Annotated[str, msgspec.Meta(pattern=r"^(flac)$")] = "flac"
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_CLIP_BYTES)] = b""


class Heartbeat(_Message, tag="heartbeat"):
    """Periodic health report of a sensor."""

    sensor_id: SensorId
    sent_at_ns: NonNegInt
    clock_status: ClockStatus
    position: Position | None = None
    clock_offset_ns: int = 0  # sample clock minus system clock at the last re-anchor
    input_rms_dbfs: Dbfs = -200.0
    input_peak_dbfs: Dbfs = -200.0
    clipping_fraction: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    xruns: NonNegInt = 0
    clock_jumps: NonNegInt = 0  # system clock steps seen since the stream started
    clock_drift_ppm: float = 0.0  # measured audio sample rate over nominal, minus 1, ppm
    outbox_depth: NonNegInt = 0
    cpu_load: NonNegFloat = 0.0
    software_version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    model_version: Annotated[str, msgspec.Meta(max_length=64)] = ""


class Ack(_Message, tag="ack"):
    """The fusion node has durably accepted these messages (detection ids)."""

    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=1024)]


class Incident(_Message, tag="incident"):
    """A located event: one or more detections from several sensors explained by one source.

    ``covariance_m2`` is the 2x2 horizontal position covariance ``[xx, xy, yy]`` in m^2;
    ``uncertainty_m`` the radius of its 95 % circle. ``position`` is ``None`` when the
    detections could not determine a point (too few sensors, degenerate geometry).
    """

    incident_id: MessageId
    label: Label
    score: Score
    origin_time_ns: NonNegInt
    position: Position | None
    uncertainty_m: NonNegFloat | None
    covariance_m2: Annotated[list[float], msgspec.Meta(min_length=3, max_length=3)] | None
    detection_ids: list[MessageId]
    sensor_ids: list[SensorId]
    status: IncidentStatus = IncidentStatus.NEW
    created_at_ns: NonNegInt = 0
    n_shots: Annotated[int, msgspec.Meta(ge=1)] = 1


Message = Detection | EvidenceClip | Heartbeat | Ack | Incident

_TAGS = {"detection", "evidence_clip", "heartbeat", "ack", "incident"}


class _Envelope(msgspec.Struct):
    """The fields checked before a message is decoded in full."""

    type: str | None = None
    schema_version: int | None = None
    sensor_id: str | None = None


_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_message_decoder = msgspec.msgpack.Decoder(Message)


def message_id(message: Message) -> str:
    """The id an :class:`Ack` names for a durable message ("" for heartbeats, acks, incidents)."""
    if isinstance(message, Detection):
        return message.detection_id
    if isinstance(message, EvidenceClip):
        return f"clip:{message.detection_id}"
    return ""


def encode(message: Message) -> bytes:
    """Serialise one message to msgpack bytes.

    Raises
    ------
    WireError
        If the encoded message exceeds :data:`MAX_MESSAGE_BYTES`.
    """
    data = _encoder.encode(message)
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"{type(message).__name__}: {len(data)} bytes exceeds limit {MAX_MESSAGE_BYTES}")
    return data


def decode(data: bytes) -> Message:
    """Parse and validate one message.

    Size and schema version are checked first, then every field.

    Raises
    ------
    WireError
        Naming the message type, the sensor (when known), the field and the schema version.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes exceeds limit {MAX_MESSAGE_BYTES}")
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(f"undecodable message ({len(data)} bytes): {exc}") from None
    where = _describe(envelope)
    if envelope.type not in _TAGS:
        raise WireError(f"{where}: unknown message type {envelope.type!r}; expected one of {sorted(_TAGS)}")
    if envelope.schema_version != SCHEMA_VERSION:
        raise WireError(f"{where}: schema v{envelope.schema_version}; this node speaks v{SCHEMA_VERSION}")
    try:
        return _message_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(f"{where}: {exc} (schema v{SCHEMA_VERSION})") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"{where}: undecodable: {exc}") from None


def _describe(envelope: _Envelope) -> str:
    kind = envelope.type or "message"
    sensor = f" from sensor {envelope.sensor_id!r}" if isinstance(envelope.sensor_id, str) else ""
    return f"{kind}{sensor}"


__all__ = [
    "DEFAULT_FUSION_ENDPOINT",
    "MAX_CLIP_BYTES",
    "MAX_MESSAGE_BYTES",
    "SCHEMA_VERSION",
    "Ack",
    "ClockStatus",
    "Detection",
    "EvidenceClip",
    "Heartbeat",
    "Incident",
    "IncidentStatus",
    "Label",
    "Message",
    "Position",
    "decode",
    "encode",
    "message_id",
]
