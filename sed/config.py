"""Configuration: TOML files validated by pydantic models, with environment overrides.

Three kinds of file, told apart by their top-level section:

- ``[sensor]`` … a pole sensor (:class:`SensorConfig`), run by ``sed sensor``;
- ``[fusion]`` / ``[api]`` … the operations-centre server (:class:`ServerConfig`);
- ``[scene]`` … a simulated city block (:class:`SceneConfig`), a capture source.

Every model forbids unknown keys, so a typo is an error. Errors name the file, the key
path, the value and what was expected::

    ConfigError: deploy/pole.toml: capture.sample_rate_hz = 44100; expected one of 8000 … 96000

Environment variables ``SED__<SECTION>__<KEY>=value`` override file values (the value is
parsed as a TOML literal when it is one, else taken as a string), e.g.
``SED__API__PORT=8080``. Relative paths are resolved against the file's directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from sed.errors import ConfigError
from sed.wire import DEFAULT_FUSION_ENDPOINT, Label, Position

ENV_PREFIX = "SED__"
SUPPORTED_SAMPLE_RATES_HZ = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PositionConfig(_Section):
    """A point in the site's local frame (east, north, up), metres."""

    x_m: float = Field(description="East of the site origin, metres.")
    y_m: float = Field(description="North of the site origin, metres.")
    z_m: float = Field(0.0, description="Height above the site origin, metres.")

    def to_wire(self) -> Position:
        return Position(x_m=self.x_m, y_m=self.y_m, z_m=self.z_m)


# ---------------------------------------------------------------------------- sensor


class StreamSection(_Section):
    """One audio stream of a multi-microphone sensor (one capture channel)."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Sensor id this stream reports as: the sensor's id or '<sensor id>.<suffix>' "
        "(the fusion node lets a sensor's key speak for both).",
    )
    position: PositionConfig | None = Field(None, description="Microphone position; default the sensor's.")


class SensorSection(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Unique sensor id, e.g. 'pole-017'.")
    position: PositionConfig
    streams: list[StreamSection] = Field(
        default_factory=list,
        description="One entry per capture channel, in the order of capture.channels; default: the "
        "sensor itself for one channel, '<id>.<channel>' at the sensor's position for several.",
    )


class CaptureSection(_Section):
    source: Literal["microphone", "file", "scene"] = Field(description="Where audio comes from.")
    sample_rate_hz: int = Field(16000, description="microphone: device rate; resampled to the model's rate.")
    block_ms: float = Field(100.0, ge=10.0, le=1000.0, description="Audio block handed to the detector, ms.")
    device: str | int | None = Field(
        None,
        description="microphone: device index, or a substring of its name (e.g. 'USB', 'pulse'); default "
        "the system's default input.",
    )
    channels: list[Annotated[int, Field(ge=0, le=255)]] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Input channels used, 0-based, one stream each (batched through one model). Default: "
        "microphone [0]; file all channels averaged into one stream; scene one stream per sensor.streams entry.",
    )
    device_timeout_s: float = Field(
        5.0, gt=0.0, le=600.0, description="microphone: no audio for this long is a fatal error (restart), s."
    )
    file: ConfigPath | None = Field(None, description="file: WAV/FLAC to replay.")
    realtime: bool = Field(True, description="file/scene: pace blocks at the audio rate.")
    scene: ConfigPath | None = Field(None, description="scene: scene TOML whose sensor list holds this id.")
    start_utc_ns: int | None = Field(
        None, ge=0, description="file/scene: UTC ns of the first sample (default: when the daemon starts)."
    )


class ClockSection(_Section):
    """How a live stream's sample counter is tied to UTC (see :mod:`sed.capture.clock`)."""

    sync_check: Literal["kernel", "none"] = Field(
        "kernel",
        description="'kernel': times are vouched for only while the kernel reports the system clock "
        "disciplined (adjtimex STA_UNSYNC clear: chrony, ntpd, gpsd, ptp4l all set it); 'none': trust it.",
    )
    input_latency_ms: float = Field(
        0.0, ge=0.0, le=500.0, description="Fixed microphone-to-callback delay of the hardware (ADC filter), ms."
    )
    holdover_s: float = Field(
        300.0, ge=0.0, le=86400.0, description="After the system clock loses sync, times count as holdover, s."
    )
    jump_threshold_ms: float = Field(1.0, gt=0.0, le=10000.0, description="A larger clock step is a jump, ms.")
    jump_hold_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="Times before a clock jump and this long after it are unsynced, s."
    )
    xrun_gap_ms: float = Field(
        20.0,
        gt=0.0,
        le=5000.0,
        description="Callbacks persistently this much later than the fit mean lost input (an xrun; PortAudio's "
        "overflow flag counts too): the clock starts a new segment, ms.",
    )
    fit_window_s: float = Field(60.0, ge=5.0, le=3600.0, description="Observations used for the drift fit, s.")


class DetectorSection(_Section):
    model: ConfigPath | None = Field(None, description="ONNX model; default the model shipped with sed.")
    thresholds: dict[Label, float] = Field(
        default_factory=dict, description="Per-class score thresholds overriding the model's."
    )
    n_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads.")


class EvidenceSection(_Section):
    enabled: bool = Field(True, description="Send a short clip around each detection.")
    pre_s: float = Field(1.0, ge=0.0, le=5.0, description="Clip length before the onset, s.")
    post_s: float = Field(2.0, ge=0.1, le=5.0, description="Clip length after the onset, s.")


class TransportSection(_Section):
    fusion_endpoint: str = Field(DEFAULT_FUSION_ENDPOINT, description="ZeroMQ endpoint of the fusion node.")
    secret_key_file: ConfigPath = Field(description="This sensor's CURVE key pair (zmq '.key_secret' file).")
    server_public_key_file: ConfigPath = Field(description="The fusion node's CURVE public key ('.key').")
    outbox_path: ConfigPath = Field(Path("outbox.sqlite"), description="Durable outbox (SQLite).")
    heartbeat_interval_s: float = Field(5.0, gt=0.0, le=300.0)
    resend_initial_s: float = Field(0.5, gt=0.0, le=60.0, description="First resend delay, s.")
    resend_max_s: float = Field(30.0, gt=0.0, le=3600.0, description="Resend back-off cap, s.")


class SensorConfig(_Section):
    """A pole sensor: ``sed sensor --config pole.toml``."""

    sensor: SensorSection
    capture: CaptureSection
    clock: ClockSection = ClockSection()
    detector: DetectorSection = DetectorSection()
    evidence: EvidenceSection = EvidenceSection()
    transport: TransportSection

    def streams(self) -> list[StreamSection]:
        """The streams this sensor reports, one per capture channel (see ``sensor.streams``)."""
        if self.sensor.streams:
            return list(self.sensor.streams)
        channels = self.capture.channels or [0]
        if len(channels) == 1:
            return [StreamSection(id=self.sensor.id)]
        return [StreamSection(id=f"{self.sensor.id}.{channel}") for channel in channels]


# ---------------------------------------------------------------------------- server


class SiteSection(_Section):
    origin_lat_deg: float | None = Field(None, ge=-90, le=90, description="Latitude of the local origin.")
    origin_lon_deg: float | None = Field(None, ge=-180, le=180, description="Longitude of the local origin.")
    temperature_c: float = Field(15.0, ge=-50, le=60, description="Air temperature for the speed of sound.")
    name: str = Field("sed", max_length=80, description="Site name shown on the dashboard.")
    tile_url: str | None = Field(
        None,
        pattern=r"^https?://.*\{z\}.*\{x\}.*\{y\}.*$",
        description="Slippy-map tile server, e.g. 'https://tiles.city.example/{z}/{x}/{y}.png' (needs the "
        "geodetic origin); None draws local coordinates on a plain background.",
    )
    tile_attribution: str = Field("", max_length=200, description="Attribution text the tile server requires.")


class FusionSection(_Section):
    bind_endpoint: str = Field(DEFAULT_FUSION_ENDPOINT, description="ZeroMQ endpoint to bind (ROUTER).")
    secret_key_file: ConfigPath = Field(description="The fusion node's CURVE key pair ('.key_secret').")
    authorized_keys_dir: ConfigPath = Field(description="Directory of sensors' public keys ('*.key').")
    min_sensors: int = Field(3, ge=3, le=64, description="Sensors needed to locate an incident.")
    association_wait_s: float = Field(
        1.5, gt=0, le=30, description="Wait after the first detection of a group for more, s."
    )
    incident_merge_s: float = Field(
        10.0, ge=0, le=600, description="Shots of one class this close in time and space join one incident, s."
    )
    incident_merge_m: float = Field(50.0, ge=0, le=5000, description="… and this close in space, m.")
    max_timing_error_ms: float = Field(5.0, gt=0, le=100, description="Worst plausible arrival error, ms.")


#: Secrets that are examples, not secrets: refused at load time.
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "change-me", "secret", "password", "example", "xxx"})


def _refuse_placeholder(value: str | None) -> str | None:
    if value is not None and (value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_CHARS):
        raise ValueError(f"a placeholder or short secret; set a random one of at least {MIN_SECRET_CHARS} characters")
    return value


#: Shortest accepted secret (webhook signing keys), characters.
MIN_SECRET_CHARS = 16
Secret = Annotated[str, AfterValidator(_refuse_placeholder)]


class ApiSection(_Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    sensor_stale_s: float = Field(30.0, gt=0, le=86400, description="No message for this long: sensor stale, s.")
    silent_below_dbfs: float = Field(-90.0, ge=-200, le=0, description="Input RMS below this: microphone silent.")
    clipping_above: float = Field(0.01, ge=0, le=1, description="Clipped-sample fraction above this: clipping.")
    token_ttl_s: float = Field(
        12 * 3600, gt=0, le=365 * 86400, description="Lifetime of a login token (one operator shift), s."
    )
    incident_feed_endpoint: str | None = Field(
        None,
        description="ZeroMQ PUB endpoint the fusion node binds to announce committed incidents; a separate "
        "'sed api' subscribes to it for live push. None: in-process only ('sed server').",
    )
    webhook_secret: Secret | None = Field(
        None, description="Default HMAC-SHA256 key for webhook rules that carry none of their own."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="One webhook POST may take this long, s.")
    webhook_max_attempts: int = Field(5, ge=1, le=20, description="Deliveries tried this often before giving up.")
    webhook_retry_initial_s: float = Field(1.0, gt=0, le=600, description="First retry delay, doubled per try, s.")
    live_keepalive_s: float = Field(15.0, gt=0, le=300, description="Comment line on idle live streams, s.")


def _refuse_placeholder_password(url: str) -> str:
    """A database URL whose password is a placeholder (``postgresql://sed:changethis@db/sed``) is refused."""
    scheme, _, rest = url.partition("://")
    credentials, at, _ = rest.rpartition("@")
    password = credentials.partition(":")[2] if at else ""
    if password and password.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"password {password!r} is a placeholder; set a real one (e.g. SED__STORE__URL)")
    if scheme.split("+")[0] not in {"sqlite", "postgresql"}:
        raise ValueError(f"database {scheme!r}; expected sqlite:/// or postgresql+psycopg://")
    return url


class StoreSection(_Section):
    url: Annotated[str, AfterValidator(_refuse_placeholder_password)] = Field(
        "sqlite:///sed.sqlite", description="SQLAlchemy database URL (sqlite or postgresql+psycopg)."
    )
    clip_retention_days: float = Field(
        30.0, gt=0, le=3650, description="Evidence clips older than this are deleted by the server, days."
    )
    retention_check_interval_s: float = Field(
        3600.0, gt=0, le=86400, description="How often the server deletes expired clips, s."
    )


class ServerConfig(_Section):
    """The operations-centre server: ``sed fusion``, ``sed api``, ``sed server``."""

    site: SiteSection = SiteSection()
    fusion: FusionSection
    api: ApiSection = ApiSection()
    store: StoreSection = StoreSection()


# ---------------------------------------------------------------------------- scene


class SceneSensor(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    x_m: float
    y_m: float
    z_m: float = 4.0


class SceneEvent(_Section):
    label: Label | Literal["negative"]
    time_s: float = Field(ge=0, description="Emission time after the scene start, s.")
    x_m: float
    y_m: float
    z_m: float = 1.5
    clip: ConfigPath | Literal["auto", "synthetic"] = Field(
        "auto", description="Sound file; 'auto' picks a dev clip of the label, else a synthetic sound."
    )
    level_db: float = Field(0.0, ge=-60, le=20, description="Peak level at 10 m, dB re full scale.")
    max_duration_s: float = Field(
        3.0, gt=0, le=60, description="Play at most this much of the clip, from just before its first loud sample, s."
    )


class SceneReflector(_Section):
    """A vertical wall (axis-aligned plane) that adds one echo per event."""

    axis: Literal["x", "y"] = Field(description="The wall is the plane axis = at_m.")
    at_m: float
    gain: float = Field(0.5, gt=0, le=1, description="Pressure reflection coefficient.")


class SceneSection(_Section):
    sample_rate_hz: Literal[16000] = Field(16000, description="Rate of the rendered streams.")
    duration_s: float = Field(30.0, gt=0, le=3600)
    temperature_c: float = Field(15.0, ge=-50, le=60)
    noise_dbfs: float = Field(-50.0, ge=-120, le=0, description="Background noise RMS, dBFS.")
    seed: int = Field(0, ge=0)
    sensors: list[SceneSensor] = Field(min_length=1)
    events: list[SceneEvent] = Field(default_factory=list)
    reflectors: list[SceneReflector] = Field(default_factory=list)


class SceneConfig(_Section):
    scene: SceneSection


# ---------------------------------------------------------------------------- loading

T = TypeVar("T", bound="_Section")

_KINDS: dict[str, type[_Section]] = {"sensor": SensorConfig, "scene": SceneConfig}


def load_config(path: str | Path, kind: type[T] | None = None) -> T:
    """Read, override from the environment, and validate one TOML config file.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    kind : type, optional
        :class:`SensorConfig`, :class:`ServerConfig` or :class:`SceneConfig`; guessed
        from the top-level section when omitted.

    Raises
    ------
    ConfigError
        Naming the file, the key path, the value and what was expected.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    model = kind or _guess_kind(raw)
    return parse_config(_apply_env_overrides(raw, os.environ), model, source=str(path), base_dir=path.parent)


def parse_config(
    raw: dict[str, Any], kind: type[T], *, source: str = "<config>", base_dir: Path | None = None
) -> T:
    """Validate an already-parsed mapping; see :func:`load_config`."""
    try:
        config = kind.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    _check_files(config, source)
    return config


def _guess_kind(raw: dict[str, Any]) -> type[_Section]:
    for key, kind in _KINDS.items():
        if key in raw:
            return kind
    return ServerConfig


def _apply_env_overrides(raw: dict[str, Any], environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    result = dict(raw)
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = _parse_env_value(text)
    return result


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


#: Keys whose values are never echoed in error messages (they may hold credentials).
_SECRET_KEY_PARTS = ("url", "password", "secret", "token")


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            lines.append(f"{source}: {key}: required key missing")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{source}: {key}: unknown key")
        else:
            secret = any(part in key.lower() for part in _SECRET_KEY_PARTS)
            value = "<hidden>" if secret else repr(error.get("input"))
            lines.append(f"{source}: {key} = {value}; {error['msg']}")
    return "\n".join(lines)


def _check_streams(config: SensorConfig, source: str) -> None:
    """Streams match the channels, and each reports as the sensor or one of its sub-ids."""
    capture, sensor = config.capture, config.sensor
    if capture.channels is not None and len(set(capture.channels)) != len(capture.channels):
        raise ConfigError(f"{source}: capture.channels = {capture.channels}; a channel is listed twice")
    if sensor.streams:
        n_channels = len(capture.channels) if capture.channels is not None else None
        if capture.source != "scene" and n_channels != len(sensor.streams):
            raise ConfigError(
                f"{source}: sensor.streams has {len(sensor.streams)} entries; capture.channels = "
                f"{capture.channels} (one stream per channel; list the channels)"
            )
        for i, stream in enumerate(sensor.streams):
            if stream.id != sensor.id and not stream.id.startswith(f"{sensor.id}."):
                raise ConfigError(
                    f"{source}: sensor.streams.{i}.id = {stream.id!r}; expected {sensor.id!r} or "
                    f"'{sensor.id}.<suffix>' (the sensor's key speaks only for those)"
                )
        ids = [stream.id for stream in sensor.streams]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{source}: sensor.streams: duplicate id(s) in {ids}")
    elif capture.source == "scene" and capture.channels is not None and len(capture.channels) > 1:
        raise ConfigError(f"{source}: capture.channels: a scene source takes its streams from sensor.streams")


def _check_files(config: _Section, source: str) -> None:
    """Refuse missing key files at load time rather than at first use."""
    checks: list[tuple[str, Path]] = []
    if isinstance(config, SensorConfig):
        checks += [
            ("transport.secret_key_file", config.transport.secret_key_file),
            ("transport.server_public_key_file", config.transport.server_public_key_file),
        ]
        if config.capture.source == "file":
            if config.capture.file is None:
                raise ConfigError(f"{source}: capture.file: required when capture.source = 'file'")
            checks.append(("capture.file", config.capture.file))
        if config.capture.source == "scene":
            if config.capture.scene is None:
                raise ConfigError(f"{source}: capture.scene: required when capture.source = 'scene'")
            checks.append(("capture.scene", config.capture.scene))
        _check_streams(config, source)
        if config.capture.sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise ConfigError(
                f"{source}: capture.sample_rate_hz = {config.capture.sample_rate_hz}; "
                f"expected one of {SUPPORTED_SAMPLE_RATES_HZ}"
            )
    if isinstance(config, ServerConfig):
        checks += [
            ("fusion.secret_key_file", config.fusion.secret_key_file),
            ("fusion.authorized_keys_dir", config.fusion.authorized_keys_dir),
        ]
    for key, path in checks:
        if not path.exists():
            raise ConfigError(f"{source}: {key} = '{path}'; no such file or directory")
    if isinstance(config, SceneConfig):
        ids = [s.id for s in config.scene.sensors]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"{source}: scene.sensors: duplicate id(s) {duplicates}")
        for i, event in enumerate(config.scene.events):
            if event.time_s >= config.scene.duration_s:
                raise ConfigError(
                    f"{source}: scene.events.{i}.time_s = {event.time_s}; "
                    f"must be before scene.duration_s = {config.scene.duration_s}"
                )
            if isinstance(event.clip, Path) and not event.clip.exists():
                raise ConfigError(f"{source}: scene.events.{i}.clip = '{event.clip}'; no such file")


__all__ = [
    "ConfigPath",
    "SceneConfig",
    "SensorConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
]
