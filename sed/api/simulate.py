"""Simulated sensors that speak the real wire protocol: for the dashboard test and the latency benchmark.

Unlike ``sed demo`` (which renders audio and runs the detector in real sensor processes),
this skips the audio path: each simulated pole sends the :class:`~sed.wire.Detection` a
real pole would send for a sound at a known place and time (arrival times from the
geometry and the speed of sound), plus a short synthetic evidence clip, through the
real :class:`~sed.capture.sender.Sender` over CURVE to the real fusion node. That makes
hundreds of incidents cheap, with exact ground truth.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from sed import wire
from sed.capture.outbox import Outbox
from sed.capture.pipeline import encode_flac
from sed.capture.sender import Sender
from sed.keys import NetworkKeys
from sed.units import speed_of_sound_m_per_s

#: Evidence clip of a simulated detection: 0.5 s before the onset, 1 s after, at 16 kHz.
CLIP_PRE_S, CLIP_POST_S, CLIP_RATE_HZ = 0.5, 1.0, 16000
#: Decay time of the synthetic impulsive sound in the clip, s.
CLIP_DECAY_S = 0.04


class SimulatedSensors:
    """One real :class:`Sender` per pole, emitting the detections of scripted sounds.

    Parameters
    ----------
    endpoint : str
        The fusion node's endpoint.
    keys : NetworkKeys
    positions_m : dict
        Sensor id -> (x_m, y_m, z_m) in the site frame.
    workdir : Path
        Where the poles' outboxes live.
    temperature_c : float
        For the speed of sound (use the server's ``site.temperature_c``).
    heartbeat_interval_s : float > 0
        Between a pole's heartbeats (a real sensor's default is 5 s).
    clip_pre_s, clip_post_s : float >= 0
        Evidence clip length before and after the onset, s (a real sensor's default: 1 s and 2 s).
    make_outbox : callable, optional
        Path -> :class:`Outbox` of one pole (the soak benchmark times acks with a subclass);
        default: an outbox that resends after 0.2 s.
    """

    def __init__(
        self,
        endpoint: str,
        keys: NetworkKeys,
        positions_m: dict[str, tuple[float, float, float]],
        workdir: Path,
        *,
        temperature_c: float = 15.0,
        heartbeat_interval_s: float = 1.0,
        clip_pre_s: float = CLIP_PRE_S,
        clip_post_s: float = CLIP_POST_S,
        make_outbox: Callable[[Path], Outbox] | None = None,
    ) -> None:
        self.positions_m = positions_m
        self.speed_m_per_s = speed_of_sound_m_per_s(temperature_c)
        self._clip_pre_s, self._clip_post_s = clip_pre_s, clip_post_s
        make_outbox = make_outbox or (lambda path: Outbox(path, resend_initial_s=0.2))
        self._rng = np.random.default_rng(0)
        self._senders: dict[str, Sender] = {}
        for sensor_id in positions_m:
            sender = Sender(
                endpoint=endpoint,
                secret_key_file=keys.sensor_secret_key_files[sensor_id],
                server_public_key_file=keys.fusion_public_key_file,
                outbox=make_outbox(workdir / f"outbox-{sensor_id}.sqlite"),
                heartbeat=self._heartbeat(sensor_id),
                heartbeat_interval_s=heartbeat_interval_s,
            )
            sender.start()
            self._senders[sensor_id] = sender

    def _heartbeat(self, sensor_id: str) -> Callable[[], wire.Heartbeat]:
        x, y, z = self.positions_m[sensor_id]

        def beat() -> wire.Heartbeat:
            return wire.Heartbeat(
                sensor_id=sensor_id,
                sent_at_ns=time.time_ns(),
                clock_status=wire.ClockStatus.SYNCED,
                position=wire.Position(x_m=x, y_m=y, z_m=z),
                input_rms_dbfs=-52.0,
                input_peak_dbfs=-30.0,
                software_version="simulated",
            )

        return beat

    def arrivals_ns(self, source_m: tuple[float, float, float], emission_ns: int) -> dict[str, int]:
        """When the sound from ``source_m`` reaches each pole, UTC ns."""
        return {
            sensor_id: emission_ns + round(math.dist(source_m, position) / self.speed_m_per_s * 1e9)
            for sensor_id, position in self.positions_m.items()
        }

    def emit(
        self,
        label: wire.Label,
        source_m: tuple[float, float, float],
        *,
        emission_ns: int | None = None,
        score: float = 0.9,
        with_clips: bool = True,
        timing_error_ns: int = 100_000,
        sensor_ids: Collection[str] | None = None,
    ) -> list[wire.Detection]:
        """Send what every pole (or each of ``sensor_ids``) would report for one sound; returns
        the detections.

        ``timing_error_ns`` is the 1-sigma error added to each arrival time (onset picking
        and clock error) and reported as its uncertainty.
        """
        emission_ns = time.time_ns() if emission_ns is None else emission_ns
        detections = []
        for sensor_id, exact_ns in self.arrivals_ns(source_m, emission_ns).items():
            if sensor_ids is not None and sensor_id not in sensor_ids:
                continue
            arrival_ns = exact_ns + round(self._rng.normal(0.0, timing_error_ns))
            x, y, z = self.positions_m[sensor_id]
            detection = wire.Detection(
                detection_id=f"{sensor_id}:{uuid.uuid4().hex[:16]}",
                sensor_id=sensor_id,
                label=label,
                score=score,
                arrival_time_ns=arrival_ns,
                arrival_uncertainty_ns=timing_error_ns,
                duration_ms=300.0,
                peak_dbfs=-12.0,
                position=wire.Position(x_m=x, y_m=y, z_m=z),
                clock_status=wire.ClockStatus.SYNCED,
                model_version="simulated",
            )
            self._senders[sensor_id].submit(detection)
            if with_clips:
                self._senders[sensor_id].submit(self._clip(detection))
            detections.append(detection)
        return detections

    def _clip(self, detection: wire.Detection) -> wire.EvidenceClip:
        n_pre, n_post = int(self._clip_pre_s * CLIP_RATE_HZ), int(self._clip_post_s * CLIP_RATE_HZ)
        t_s = np.arange(n_post) / CLIP_RATE_HZ
        audio = 0.003 * self._rng.standard_normal(n_pre + n_post)
        audio[n_pre:] += 0.8 * self._rng.standard_normal(n_post) * np.exp(-t_s / CLIP_DECAY_S)
        return wire.EvidenceClip(
            detection_id=detection.detection_id,
            sensor_id=detection.sensor_id,
            start_time_ns=detection.arrival_time_ns - int(self._clip_pre_s * 1e9),
            sample_rate_hz=CLIP_RATE_HZ,
            data=encode_flac(audio.astype(np.float32), sample_rate_hz=CLIP_RATE_HZ),
        )

    def close(self) -> None:
        for sender in self._senders.values():
            sender.stop(flush_timeout_s=1.0)
            sender.outbox.close()


__all__ = ["SimulatedSensors"]
