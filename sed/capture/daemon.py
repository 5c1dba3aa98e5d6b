"""The pole sensor daemon: ``sed sensor --config pole.toml``.

Source → :class:`~sed.capture.pipeline.SensorPipeline` (detector, onset picker, evidence
clips) → durable outbox → :class:`~sed.capture.sender.Sender` → fusion node. SIGTERM and
SIGINT stop it cleanly: the source is closed, pending clips are sent, and the sender
flushes the outbox for a few seconds; anything unacknowledged stays on disk for the next
start.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from pathlib import Path

from sed import __version__, wire
from sed.capture.outbox import Outbox
from sed.capture.pipeline import SensorPipeline
from sed.capture.sender import Sender
from sed.capture.sources import AudioSource, FileSource, SceneSource
from sed.config import SensorConfig, load_config
from sed.errors import ConfigError
from sed.models import StreamingDetector
from sed.runtime import setup_logging, stop_on_signals

log = logging.getLogger("sed.sensor")

#: How long the sender keeps trying to deliver pending messages at shutdown, s.
SHUTDOWN_FLUSH_S = 3.0


def build_source(config: SensorConfig, *, sample_rate_hz: int) -> AudioSource:
    """The configured audio source, delivering audio at the detector's ``sample_rate_hz``."""
    capture = config.capture
    if capture.source == "scene":
        source: AudioSource = SceneSource(capture, config.sensor.id)
    elif capture.source == "file":
        source = FileSource(capture, sample_rate_hz=sample_rate_hz)
    else:
        from sed.capture.microphone import MicrophoneSource  # imports PortAudio only when needed

        source = MicrophoneSource(capture, sample_rate_hz=sample_rate_hz)
    if source.sample_rate_hz != sample_rate_hz:
        raise ConfigError(
            f"capture.source = {capture.source!r} delivers {source.sample_rate_hz} Hz; "
            f"the model needs {sample_rate_hz} Hz"
        )
    return source


class _Health:
    """Builds heartbeats from the pipeline's levels, the outbox and process CPU time."""

    def __init__(self, config: SensorConfig, pipeline: SensorPipeline, outbox: Outbox) -> None:
        self._config = config
        self._pipeline = pipeline
        self._outbox = outbox
        self._last_wall_s = time.monotonic()
        self._last_cpu_s = time.process_time()

    def heartbeat(self) -> wire.Heartbeat:
        now_wall, now_cpu = time.monotonic(), time.process_time()
        cpu_load = (now_cpu - self._last_cpu_s) / max(now_wall - self._last_wall_s, 1e-6)
        self._last_wall_s, self._last_cpu_s = now_wall, now_cpu
        levels = self._pipeline.take_levels()
        clock = self._pipeline.clock
        return wire.Heartbeat(
            sensor_id=self._config.sensor.id,
            sent_at_ns=time.time_ns(),
            clock_status=clock.status,
            position=self._config.sensor.position.to_wire(),
            clock_offset_ns=clock.to_ns(self._pipeline.ring.n_written) - time.time_ns(),
            input_rms_dbfs=levels.rms_dbfs(),
            input_peak_dbfs=min(10.0, levels.peak_dbfs()),
            clipping_fraction=levels.n_clipped / levels.n_samples if levels.n_samples else 0.0,
            outbox_depth=self._outbox.depth(),
            cpu_load=max(0.0, cpu_load),
            software_version=__version__,
            model_version=self._pipeline.detector.model_version,
        )


def run(config: SensorConfig, stop: threading.Event, *, source: AudioSource | None = None) -> SensorPipeline:
    """Run until the source ends or ``stop`` is set; returns the pipeline (for its counters)."""
    detector = StreamingDetector.from_file(
        config.detector.model,
        n_streams=1,
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
        sensor_id=config.sensor.id,
        position=config.sensor.position.to_wire(),
        detector=detector,
        clock=source.clock,
        evidence=config.evidence,
        submit=sender.submit,
    )
    sender.heartbeat = _Health(config, pipeline, outbox).heartbeat
    sender.start()
    log.info(
        "sensor %s: %s source at %d Hz, model %s, sending to %s (outbox %d pending)",
        config.sensor.id,
        config.capture.source,
        source.sample_rate_hz,
        detector.model_version,
        transport.fusion_endpoint,
        outbox.depth(),
    )
    try:
        for block in source.blocks():
            for detection in pipeline.process(block):
                log.info(
                    "detected %s (score %.2f) arriving %d ns ±%.2f ms",
                    detection.label,
                    detection.score,
                    detection.arrival_time_ns,
                    detection.arrival_uncertainty_ns / 1e6,
                )
            if stop.is_set():
                break
        pipeline.finish()
    finally:
        source.close()
        sender.stop(flush_timeout_s=SHUTDOWN_FLUSH_S)
        log.info("stopped: %d detections, %s, %d still in the outbox", pipeline.n_detections, sender.stats, outbox.depth())
        outbox.close()
    return pipeline


def main(argv: list[str], *, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="sensor TOML ([sensor], [capture], [transport] …)")
    parser.add_argument("--log-level", default=os.environ.get("SED_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    config = load_config(args.config, SensorConfig)
    setup_logging(f"sensor {config.sensor.id}", level=args.log_level)
    stop = threading.Event()
    stop_on_signals(stop)
    run(config, stop)
    return 0


__all__ = ["build_source", "run"]
