"""The pole sensor daemon: ``sed sensor --config pole.toml``.

Source (microphone, file or scene; one or several streams) →
:class:`~sed.capture.pipeline.SensorPipeline` (one batched detector, onset picker,
evidence clips) → durable outbox → :class:`~sed.capture.sender.Sender` → fusion node.

SIGTERM and SIGINT stop it cleanly: the source is closed, the detector is flushed (a
sound in the last second is still reported), pending clips are sent with the audio that
exists, and the sender tries for a few seconds to deliver what is pending; anything
unacknowledged stays in the outbox for the next start. Under systemd (``Type=notify``)
it reports ``READY=1`` and pings the watchdog after each block of audio.

Exit status: 0 after a clean stop or the end of a file/scene, 2 on a configuration or
device error (printed as one line naming the key).
"""

from __future__ import annotations

import logging
import threading
import time

from sed import __version__, wire
from sed.capture import systemd
from sed.capture.outbox import Outbox
from sed.capture.pipeline import SensorPipeline, StreamInfo
from sed.capture.sender import Sender
from sed.capture.sources import AudioSource, FileSource, SceneSource
from sed.config import SensorConfig
from sed.errors import ConfigError
from sed.models import StreamingDetector
from sed.runtime import start_service

log = logging.getLogger("sed.sensor")

#: How long the sender keeps trying to deliver pending messages at shutdown, s.
SHUTDOWN_FLUSH_S = 3.0


def stream_infos(config: SensorConfig) -> list[StreamInfo]:
    """Who each stream reports as (``sensor.streams``, or the sensor itself)."""
    default = config.sensor.position
    return [
        StreamInfo(sensor_id=stream.id, position=(stream.position or default).to_wire()) for stream in config.streams()
    ]


def build_source(config: SensorConfig, *, sample_rate_hz: int) -> AudioSource:
    """The configured audio source, delivering audio at the detector's ``sample_rate_hz``."""
    capture = config.capture
    if capture.source == "scene":
        source: AudioSource = SceneSource(capture, [stream.id for stream in config.streams()])
    elif capture.source == "file":
        source = FileSource(capture, sample_rate_hz=sample_rate_hz)
    else:
        from sed.capture.microphone import MicrophoneSource  # imports PortAudio only when needed

        source = MicrophoneSource(capture, sample_rate_hz=sample_rate_hz, clock=config.clock)
    if source.sample_rate_hz != sample_rate_hz:
        raise ConfigError(
            f"capture.source = {capture.source!r} delivers {source.sample_rate_hz} Hz; "
            f"the model needs {sample_rate_hz} Hz"
        )
    if source.n_streams != len(config.streams()):
        raise ConfigError(
            f"capture: the {capture.source} source delivers {source.n_streams} stream(s); "
            f"sensor.streams lists {len(config.streams())}"
        )
    return source


class _Health:
    """Builds one heartbeat per stream from levels, the clock, the outbox and process CPU time."""

    def __init__(self, config: SensorConfig, pipeline: SensorPipeline, outbox: Outbox) -> None:
        self._pipeline = pipeline
        self._outbox = outbox
        self._last_wall_s = time.monotonic()
        self._last_cpu_s = time.process_time()

    def heartbeats(self) -> list[wire.Heartbeat]:
        now_wall, now_cpu = time.monotonic(), time.process_time()
        cpu_load = (now_cpu - self._last_cpu_s) / max(now_wall - self._last_wall_s, 1e-6)
        self._last_wall_s, self._last_cpu_s = now_wall, now_cpu
        pipeline = self._pipeline
        clock = pipeline.clock.report(pipeline.ring.n_written)
        depth = self._outbox.depth()
        return [
            wire.Heartbeat(
                sensor_id=stream.sensor_id,
                sent_at_ns=time.time_ns(),
                clock_status=clock.status,
                position=stream.position,
                clock_offset_ns=clock.offset_ns,
                clock_jumps=clock.jumps,
                clock_drift_ppm=clock.drift_ppm,
                xruns=clock.xruns,
                input_rms_dbfs=levels.rms_dbfs(),
                input_peak_dbfs=min(10.0, levels.peak_dbfs()),
                clipping_fraction=levels.clipping_fraction(),
                outbox_depth=depth,
                cpu_load=max(0.0, cpu_load),
                software_version=__version__,
                model_version=pipeline.detector.model_version,
            )
            for stream, levels in zip(pipeline.streams, pipeline.take_levels(), strict=True)
        ]


def run(config: SensorConfig, stop: threading.Event, *, source: AudioSource | None = None) -> SensorPipeline:
    """Run until the source ends or ``stop`` is set; returns the pipeline (for its counters)."""
    streams = stream_infos(config)
    detector = StreamingDetector.from_file(
        config.detector.model,
        n_streams=len(streams),
        thresholds={str(label): value for label, value in config.detector.thresholds.items()} or None,
        n_threads=config.detector.n_threads,
    )
    source = source or build_source(config, sample_rate_hz=detector.sample_rate_hz)
    transport = config.transport
    outbox = Outbox(
        transport.outbox_path, resend_initial_s=transport.resend_initial_s, resend_max_s=transport.resend_max_s
    )
    sender = Sender(
        endpoint=transport.fusion_endpoint,
        secret_key_file=transport.secret_key_file,
        server_public_key_file=transport.server_public_key_file,
        outbox=outbox,
        heartbeat_interval_s=transport.heartbeat_interval_s,
    )
    pipeline = SensorPipeline(
        streams=streams, detector=detector, clock=source.clock, evidence=config.evidence, submit=sender.submit
    )
    sender.heartbeat = _Health(config, pipeline, outbox).heartbeats
    sender.start()
    log.info(
        "sensor %s: %s source, %d stream(s) at %d Hz, model %s, sending to %s (outbox %d pending)",
        config.sensor.id,
        config.capture.source,
        len(streams),
        source.sample_rate_hz,
        detector.model_version,
        transport.fusion_endpoint,
        outbox.depth(),
    )
    watchdog = systemd.Watchdog()
    systemd.notify("READY=1")
    try:
        for block in source.blocks():
            _log(pipeline.process(block))
            watchdog.ping()
            if stop.is_set():
                break
        _log(pipeline.finish())
    finally:
        systemd.notify("STOPPING=1")
        source.close()
        sender.stop(flush_timeout_s=SHUTDOWN_FLUSH_S)
        log.info(
            "stopped: %d detections, %s, %d still in the outbox", pipeline.n_detections, sender.stats, outbox.depth()
        )
        outbox.close()
    return pipeline


def _log(detections: list[wire.Detection]) -> None:
    for detection in detections:
        log.info(
            "detected %s on %s (score %.2f) arriving %d ns ±%.2f ms, clock %s",
            detection.label,
            detection.sensor_id,
            detection.score,
            detection.arrival_time_ns,
            detection.arrival_uncertainty_ns / 1e6,
            detection.clock_status,
        )


def main(argv: list[str], *, prog: str) -> int:
    config, stop = start_service(
        argv,
        prog=prog,
        description=__doc__,
        kind=SensorConfig,
        config_help="sensor TOML ([sensor], [capture], [transport] …)",
        component=lambda c: f"sensor {c.sensor.id}",
    )
    run(config, stop)
    return 0


__all__ = ["build_source", "run", "stream_infos"]
