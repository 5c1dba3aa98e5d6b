"""Sections of a pole sensor's file (``[sensor]``, ``[capture]``, ``[clock]``, ``[detector]``,
``[evidence]``, ``[transport]``): ``sed sensor --config pole.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from sed.config.base import ConfigPath, ConnectEndpoint, PositionConfig, Section, UtcNs, require_exists
from sed.errors import ConfigError
from sed.wire import DEFAULT_FUSION_ENDPOINT, Label

SUPPORTED_SAMPLE_RATES_HZ = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


class StreamSection(Section):
    """One audio stream of a multi-microphone sensor (one capture channel)."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Sensor id this stream reports as: the sensor's id or '<sensor id>.<suffix>' "
        "(the fusion node lets a sensor's key speak for both).",
    )
    position: PositionConfig | None = Field(None, description="Microphone position; default the sensor's.")


class SensorSection(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Unique sensor id, e.g. 'pole-017'.")
    position: PositionConfig
    streams: list[StreamSection] = Field(
        default_factory=list,
        description="One entry per capture channel, in the order of capture.channels; default: the "
        "sensor itself for one channel, '<id>.<channel>' at the sensor's position for several.",
    )


class CaptureSection(Section):
    source: Literal["microphone", "file", "scene"] = Field(description="Where audio comes from.")
    sample_rate_hz: int = Field(
        16000, ge=1, le=1_000_000, description="microphone: device rate; resampled to the model's rate."
    )
    block_ms: float = Field(100.0, ge=10.0, le=1000.0, description="Audio block handed to the detector, ms.")
    device: Annotated[str, Field(max_length=256)] | Annotated[int, Field(ge=0, le=4096)] | None = Field(
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
    start_utc_ns: UtcNs | None = Field(
        None, description="file/scene: UTC ns of the first sample (default: when the daemon starts)."
    )


class ClockSection(Section):
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


class DetectorSection(Section):
    model: ConfigPath | None = Field(None, description="ONNX model; default the model shipped with sed.")
    thresholds: dict[Label, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, description="Per-class score thresholds overriding the model's."
    )
    n_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads.")


class EvidenceSection(Section):
    enabled: bool = Field(True, description="Send a short clip around each detection.")
    pre_s: float = Field(1.0, ge=0.0, le=5.0, description="Clip length before the onset, s.")
    post_s: float = Field(2.0, ge=0.1, le=5.0, description="Clip length after the onset, s.")


class TransportSection(Section):
    fusion_endpoint: ConnectEndpoint = Field(
        DEFAULT_FUSION_ENDPOINT,
        description="ZeroMQ endpoint of the fusion node, e.g. 'tcp://fusion.city.example:5750'.",
    )
    secret_key_file: ConfigPath = Field(description="This sensor's CURVE key pair (zmq '.key_secret' file).")
    server_public_key_file: ConfigPath = Field(description="The fusion node's CURVE public key ('.key').")
    outbox_path: ConfigPath = Field(Path("outbox.sqlite"), description="Durable outbox (SQLite).")
    heartbeat_interval_s: float = Field(5.0, gt=0.0, le=300.0)
    resend_initial_s: float = Field(0.5, gt=0.0, le=60.0, description="First resend delay, s.")
    resend_max_s: float = Field(30.0, gt=0.0, le=3600.0, description="Resend back-off cap, s.")


class SensorConfig(Section):
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

    def check(self, source: str) -> None:
        require_exists(source, "transport.secret_key_file", self.transport.secret_key_file)
        require_exists(source, "transport.server_public_key_file", self.transport.server_public_key_file)
        capture = self.capture
        if capture.source in ("file", "scene"):
            key = capture.source
            path = capture.file if key == "file" else capture.scene
            if path is None:
                raise ConfigError(f"{source}: capture.{key}: required when capture.source = '{key}'")
            require_exists(source, f"capture.{key}", path)
        if capture.sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise ConfigError(
                f"{source}: capture.sample_rate_hz = {capture.sample_rate_hz}; "
                f"expected one of {SUPPORTED_SAMPLE_RATES_HZ}"
            )
        _check_streams(self, source)


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
