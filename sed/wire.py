"""Every message that crosses a process boundary, in one versioned schema.

Messages are ``msgspec.Struct`` s encoded as msgpack, tagged by a ``type`` field so
:func:`decode` returns a typed object, never a tuple whose order one must remember.
Physical fields carry their unit in the name (``arrival_time_ns`` is integer UTC
nanoseconds, ``uncertainty_m`` metres). The schema version travels in every message and
is checked, together with the size limit, before anything else is decoded.

Physics is validated here, once, so nothing downstream (SQLite, PostgreSQL, the
locator) ever sees a value it cannot hold: every integer fits a signed 64-bit column,
every float is finite and within a plausible bound (positions within
:data:`MAX_HORIZONTAL_M` / :data:`MAX_VERTICAL_M` of the site origin), every string is
bounded and free of NUL and control characters, and nesting too deep to decode is a
:class:`~sed.errors.WireError`, never a ``RecursionError``. Wire content quoted in an
error message is escaped, so a message cannot forge log lines.

The fusion node answers a durable message (detection, evidence clip) with an
:class:`Ack` once it is stored, or with a :class:`Reject` when it will never accept it
(invalid, outside the site, spoofed), so the sensor stops resending it.

Schema versions: this module encodes v2 and decodes v1 and v2 (:data:`DECODABLE_VERSIONS`).
v2 added :attr:`Detection.directness` and the alert-first life cycle of an
:class:`Incident` (:attr:`~Incident.stage`, :attr:`~Incident.merged_into`,
:attr:`~Incident.revision`). A v1 message decodes as its v2 equivalent: a detection's
directness 0 (no opinion), an incident ``located`` when it has a position else
``unlocated``, revision 0.

Example
-------
>>> from sed import wire
>>> hb = wire.Heartbeat(sensor_id="pole-017", sent_at_ns=1, clock_status=wire.ClockStatus.SYNCED)
>>> wire.decode(wire.encode(hb)) == hb
True
"""

from __future__ import annotations

import enum
import unicodedata
from typing import Annotated

import msgspec

from sed.errors import WireError

#: The version every message is encoded in.
SCHEMA_VERSION = 2
#: Versions :func:`decode` reads: the previous one decodes as its v2 equivalent (see the module docstring).
DECODABLE_VERSIONS = (1, 2)
#: Largest message accepted on the wire, bytes. An evidence clip (3 s, 16 kHz, FLAC) is ~60 kB.
MAX_MESSAGE_BYTES = 1 << 20
#: Largest evidence clip payload, bytes.
MAX_CLIP_BYTES = 768 * 1024

#: Default endpoint the fusion node binds for sensors (ROUTER, CURVE server).
DEFAULT_FUSION_ENDPOINT = "tcp://127.0.0.1:5750"

#: Largest and smallest integer any field holds: a signed 64-bit database column.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Largest distance east or north of the site origin a position may have, m (a city is far smaller).
MAX_HORIZONTAL_M = 1e7
#: Largest height above or below the site origin a position may have, m.
MAX_VERTICAL_M = 1e4
#: Longest reason a :class:`Reject` carries, characters.
MAX_REASON_CHARS = 500
#: Longest quote of a decoder's complaint in a :class:`~sed.errors.WireError`, characters.
_MAX_DETAIL_CHARS = 300
#: Most ids one :class:`Ack` or :class:`Reject` names.
MAX_IDS_PER_REPLY = 1024

# ``\A`` and ``\Z``, never ``^`` and ``$``: Python's ``$`` also matches before a trailing newline.
#: No C0/C1 control characters (NUL, CR, LF, ESC ...) and no Unicode line separators.
_PRINTABLE = r"\A[^\x00-\x1f\x7f-\x9f\u2028\u2029]*\Z"

SensorId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\A[A-Za-z0-9_.:-]+\Z")]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=96, pattern=_PRINTABLE)]
VersionText = Annotated[str, msgspec.Meta(max_length=64, pattern=_PRINTABLE)]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# Bounds on floats also refuse NaN and infinities: msgspec fails a NaN against ``ge``/``le``.
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
Dbfs = Annotated[float, msgspec.Meta(ge=-200.0, le=10.0)]
HorizontalM = Annotated[float, msgspec.Meta(ge=-MAX_HORIZONTAL_M, le=MAX_HORIZONTAL_M)]
VerticalM = Annotated[float, msgspec.Meta(ge=-MAX_VERTICAL_M, le=MAX_VERTICAL_M)]
#: A detected sound lasts seconds; ten minutes is already absurd, ms.
DurationMs = Annotated[float, msgspec.Meta(ge=0.0, le=600_000.0)]
#: Sample rate over nominal, minus 1: +-1e6 ppm is a factor of two, far beyond any real clock.
DriftPpm = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
#: CPU seconds per wall second of the sensor process (above 1 on several cores).
CpuLoad = Annotated[float, msgspec.Meta(ge=0.0, le=1024.0)]
#: A located incident's 95 % radius, m; the bound only refuses non-finite values.
UncertaintyM = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
CovarianceM2 = Annotated[float, msgspec.Meta(ge=-1e18, le=1e18)]
#: Largest magnitude of a detection's directness, log-odds (the sensor's picker gives |x| <= 5).
MAX_DIRECTNESS = 50.0
Directness = Annotated[float, msgspec.Meta(ge=-MAX_DIRECTNESS, le=MAX_DIRECTNESS)]


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


class IncidentPriority(enum.StrEnum):
    """How an incident reaches operators, set by the fusion node's false-alarm policy
    (:mod:`sed.fusion.policy`); the status, by contrast, is the operators' review."""

    ALERT = "alert"  # webhooks fire, the dashboard sounds the alert
    UNCONFIRMED = "unconfirmed"  # one sensor, low confidence or a noisy sensor: shown muted
    SUPPRESSED = "suppressed"  # started during a storm of its class (fireworks): listed under a filter


class IncidentStage(enum.StrEnum):
    """Where an incident is in "alert first, refine later" (schema v2); every change is
    pushed under the same ``incident_id`` with a higher :attr:`Incident.revision`."""

    PROVISIONAL = "provisional"  # first detection(s): shown at once; may move, be located or be merged
    LOCATED = "located"  # has a position; may still be refined as poles join
    UNLOCATED = "unlocated"  # final: the wait is over, no position; the poles that heard it are the region
    MERGED = "merged"  # superseded: its detections belong to ``merged_into``; remove it from view


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A point in the site's local metric frame (east, north, up), metres."""

    x_m: HorizontalM
    y_m: HorizontalM
    z_m: VerticalM = 0.0


class _Message(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    schema_version: NonNegInt = SCHEMA_VERSION


class Detection(_Message, tag="detection"):
    """One sensor heard one event.

    ``arrival_time_ns`` is the onset of the direct sound at the microphone, integer UTC
    nanoseconds; ``arrival_uncertainty_ns`` its 1-sigma uncertainty. ``clock_status``
    other than ``synced`` means the time must not be used for localisation.
    ``directness`` (v2) is the sensor's log-odds that the onset is the direct sound rather
    than an echo (:attr:`sed.dsp.onset.Pick.directness`); 0 is no opinion (a v1 sensor, or
    no onset picked).
    """

    detection_id: MessageId
    sensor_id: SensorId
    label: Label
    score: Score
    arrival_time_ns: NonNegInt
    arrival_uncertainty_ns: NonNegInt
    duration_ms: DurationMs
    peak_dbfs: Dbfs
    position: Position
    clock_status: ClockStatus
    model_version: VersionText = ""
    directness: Directness = 0.0


class EvidenceClip(_Message, tag="evidence_clip"):
    """A short compressed clip around a detection; the only audio that leaves a sensor."""

    detection_id: MessageId
    sensor_id: SensorId
    start_time_ns: NonNegInt
    sample_rate_hz: Annotated[int, msgspec.Meta(ge=8000, le=96000)]
    codec: Annotated[str, msgspec.Meta(pattern=r"\A(flac)\Z")] = "flac"
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_CLIP_BYTES)] = b""


class Heartbeat(_Message, tag="heartbeat"):
    """Periodic health report of a sensor."""

    sensor_id: SensorId
    sent_at_ns: NonNegInt
    clock_status: ClockStatus
    position: Position | None = None
    clock_offset_ns: Int64 = 0  # sample clock minus system clock at the last re-anchor
    input_rms_dbfs: Dbfs = -200.0
    input_peak_dbfs: Dbfs = -200.0
    clipping_fraction: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    xruns: NonNegInt = 0
    clock_jumps: NonNegInt = 0  # system clock steps seen since the stream started
    clock_drift_ppm: DriftPpm = 0.0  # measured audio sample rate over nominal, minus 1, ppm
    outbox_depth: NonNegInt = 0
    cpu_load: CpuLoad = 0.0
    software_version: VersionText = ""
    model_version: VersionText = ""


class Ack(_Message, tag="ack"):
    """The fusion node has durably accepted these messages (detection ids)."""

    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_IDS_PER_REPLY)]


class Reject(_Message, tag="reject"):
    """The fusion node will never accept these messages; the sensor drops them from its outbox.

    Sent for a durable message that is invalid, outside the site or spoofed, so that it is
    not resent forever. ``reason`` says why, for the sensor's log.
    """

    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_IDS_PER_REPLY)]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON_CHARS, pattern=_PRINTABLE)]


class Incident(_Message, tag="incident"):
    """An event: one or more detections from one or more sensors explained by one source.

    ``covariance_m2`` is the 2x2 horizontal position covariance ``[xx, xy, yy]`` in m^2;
    ``uncertainty_m`` the radius of its 95 % circle. ``position`` is ``None`` when the
    detections could not determine a point (too few sensors, degenerate geometry).

    ``stage`` (v2, :class:`IncidentStage`) says how final it is; ``None`` on construction
    or on the wire (a v1 message) means "derive it": ``located`` with a position, else
    ``unlocated``, so after construction it is never ``None``. ``merged_into`` names the
    incident that took over a ``merged`` one's detections (set exactly when merged).
    ``revision`` counts the updates of this ``incident_id``: a subscriber drops an update
    whose revision is below the one it holds.
    """

    incident_id: MessageId
    label: Label
    score: Score
    origin_time_ns: NonNegInt
    position: Position | None
    uncertainty_m: UncertaintyM | None
    covariance_m2: Annotated[list[CovarianceM2], msgspec.Meta(min_length=3, max_length=3)] | None
    detection_ids: list[MessageId]
    sensor_ids: list[SensorId]
    status: IncidentStatus = IncidentStatus.NEW
    created_at_ns: NonNegInt = 0
    n_shots: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] = 1
    # Additive: an incident from a node without the policy decodes as an alert, as it was.
    priority: IncidentPriority = IncidentPriority.ALERT
    stage: IncidentStage | None = None
    merged_into: MessageId | None = None
    revision: NonNegInt = 0

    def __post_init__(self) -> None:
        # Runs on decode too, where msgspec reports a ValueError as a validation error of the message.
        if self.stage is None:
            derived = IncidentStage.UNLOCATED if self.position is None else IncidentStage.LOCATED
            msgspec.structs.force_setattr(self, "stage", derived)
        merged = self.stage is IncidentStage.MERGED
        if merged != (self.merged_into is not None):
            raise ValueError(
                f"incident {self.incident_id!r}: stage {self.stage} with merged_into={self.merged_into!r}; "
                "expected merged_into set exactly when the stage is merged"
            )
        if self.merged_into == self.incident_id:
            raise ValueError(f"incident {self.incident_id!r}: merged into itself")


Message = Detection | EvidenceClip | Heartbeat | Ack | Reject | Incident

_TAGS = {"detection", "evidence_clip", "heartbeat", "ack", "reject", "incident"}
#: Message types a sensor keeps in its outbox until acked or rejected, with the prefix of their id.
_DURABLE_ID_PREFIX = {"detection": "", "evidence_clip": "clip:"}


class _Envelope(msgspec.Struct):
    """The fields checked before a message is decoded in full (and named in a :class:`Reject`)."""

    type: str | None = None
    schema_version: int | None = None
    sensor_id: str | None = None
    detection_id: str | None = None


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
        Naming the message type, the sensor (when known), the field and the schema version;
        also for nesting too deep to decode.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes exceeds limit {MAX_MESSAGE_BYTES}")
    envelope = _decode_envelope(data)
    where = _describe(envelope)
    if envelope.type not in _TAGS:
        raise WireError(f"{where}: unknown message type {envelope.type!r}; expected one of {sorted(_TAGS)}")
    version = envelope.schema_version
    if version not in DECODABLE_VERSIONS:
        raise WireError(
            f"{where}: schema v{version}; this node speaks v{SCHEMA_VERSION} and decodes "
            + ", ".join(f"v{v}" for v in DECODABLE_VERSIONS)
        )
    try:
        message = _message_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise WireError(f"{where}: {printable(str(exc), max_chars=_MAX_DETAIL_CHARS)} (schema v{version})") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"{where}: undecodable: {printable(str(exc), max_chars=_MAX_DETAIL_CHARS)}") from None
    except RecursionError:
        raise WireError(f"{where}: nested too deeply to decode") from None
    # An older message decodes as its current equivalent (fields it lacks take their defaults),
    # so whatever re-encodes it writes the current version.
    return message if version == SCHEMA_VERSION else msgspec.structs.replace(message, schema_version=SCHEMA_VERSION)


def rejectable_id(data: bytes) -> str | None:
    """The outbox id of a durable message this node will never accept, for a :class:`Reject`.

    Call it for a message :func:`decode` refused. Returns the id the sensor resends it
    under (``detection_id``, or ``clip:<detection_id>`` for an evidence clip) when the
    envelope is readable, of a version this node decodes and the id itself is a valid
    :data:`MessageId`; else ``None``: a message of another version may be accepted after
    an upgrade, so it is never rejected, and a message whose envelope cannot be read
    names nothing to reject (no sensor of ours sends one).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        envelope = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    prefix = _DURABLE_ID_PREFIX.get(envelope.type) if isinstance(envelope.type, str) else None
    if (
        prefix is None
        or envelope.schema_version not in DECODABLE_VERSIONS
        or not isinstance(envelope.detection_id, str)
    ):
        return None
    try:  # the same check a Reject's ids get when the sensor decodes it
        return msgspec.convert(prefix + envelope.detection_id, type=MessageId)
    except msgspec.ValidationError:
        return None


def reject_reason(text: str) -> str:
    """``text`` made a valid :attr:`Reject.reason`: non-printable characters escaped, shortened to fit."""
    return printable(text, max_chars=MAX_REASON_CHARS)


def _decode_envelope(data: bytes) -> _Envelope:
    try:
        return _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(
            f"undecodable message ({len(data)} bytes): {printable(str(exc), max_chars=_MAX_DETAIL_CHARS)}"
        ) from None
    except RecursionError:
        # msgspec recurses into nested arrays and maps, even into fields it skips.
        raise WireError(f"undecodable message ({len(data)} bytes): nested too deeply to decode") from None


def _describe(envelope: _Envelope) -> str:
    kind = envelope.type if envelope.type in _TAGS else "message"
    sensor = f" from sensor {envelope.sensor_id!r}" if isinstance(envelope.sensor_id, str) else ""
    return f"{kind}{sensor}"


def printable(text: str, *, max_chars: int) -> str:
    """``text`` with control, format, surrogate and line-separator characters escaped
    (``\\x0a``, ``\\u200b``) and cut to ``max_chars`` (ending in ``…`` when cut): safe to quote
    in a log line, a :class:`Reject` and any database's text column (PostgreSQL refuses NUL),
    so wire content cannot forge log lines.
    """
    escaped = "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") if _unprintable(c) else c
        for c in text[: max_chars + 1]  # each character escapes to one or more: enough to fill and to tell a cut
    )
    return escaped if len(escaped) <= max_chars else escaped[: max_chars - 1] + "…"


def _unprintable(c: str) -> bool:
    category = unicodedata.category(c)
    return category[0] == "C" or category in {"Zl", "Zp"}  # controls, format, surrogates; line breaks


__all__ = [
    "DECODABLE_VERSIONS",
    "DEFAULT_FUSION_ENDPOINT",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_CLIP_BYTES",
    "MAX_DIRECTNESS",
    "MAX_HORIZONTAL_M",
    "MAX_IDS_PER_REPLY",
    "MAX_MESSAGE_BYTES",
    "MAX_REASON_CHARS",
    "MAX_VERTICAL_M",
    "SCHEMA_VERSION",
    "Ack",
    "ClockStatus",
    "Detection",
    "EvidenceClip",
    "Heartbeat",
    "Incident",
    "IncidentPriority",
    "IncidentStage",
    "IncidentStatus",
    "Label",
    "Message",
    "Position",
    "Reject",
    "decode",
    "encode",
    "message_id",
    "printable",
    "reject_reason",
    "rejectable_id",
]
