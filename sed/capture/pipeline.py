"""What a sensor does with each block: detect, time the onset, keep evidence, report levels.

Independent of sockets and sound cards: blocks in, wire messages out through ``submit``.
Only two kinds of message leave: a :class:`~sed.wire.Detection` the moment an event is
confirmed, and (if enabled) one short :class:`~sed.wire.EvidenceClip` around it once the
post-onset audio has been captured. Nothing else of the audio leaves the sensor: the
ring buffer lives in memory only and is overwritten after :data:`RING_S`.

One pipeline serves every stream of a sensor (e.g. the four channels of an array): all
streams go through the front end and the model in one batched call, and each reports
under its own sensor id and position.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Sequence

import numpy as np
import soundfile

from sed import wire
from sed.capture.clock import CaptureClock
from sed.capture.ring import AudioRing
from sed.capture.sources import Block
from sed.config import EvidenceSection
from sed.dsp.onset import pick_arrival
from sed.errors import ConfigError
from sed.models import DetectorEvent, StreamingDetector

#: Audio kept in memory for onset picking and evidence clips, s.
RING_S = 12.0
#: Pre-roll handed to the onset picker before the detector's search span (noise estimate), s.
PICK_PREROLL_S = 1.0
#: Timing uncertainty claimed when no sharp onset is found in the span (not for localisation), s.
UNPICKED_UNCERTAINTY_S = 0.05
#: A sample at or above this magnitude counts as clipped.
CLIP_LEVEL = 0.999

Submit = Callable[[wire.Detection | wire.EvidenceClip], None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamInfo:
    """Who one stream reports as."""

    sensor_id: str
    position: wire.Position


@dataclasses.dataclass
class InputLevels:
    """Input level statistics of one stream since the last :meth:`SensorPipeline.take_levels`."""

    sum_squares: float = 0.0
    peak: float = 0.0
    n_samples: int = 0
    n_clipped: int = 0

    def rms_dbfs(self) -> float:
        return _dbfs(math.sqrt(self.sum_squares / self.n_samples)) if self.n_samples else -200.0

    def peak_dbfs(self) -> float:
        return _dbfs(self.peak)

    def clipping_fraction(self) -> float:
        return self.n_clipped / self.n_samples if self.n_samples else 0.0


def _dbfs(amplitude: float) -> float:
    return max(-200.0, 20 * math.log10(amplitude)) if amplitude > 0 else -200.0


class SensorPipeline:
    """Blocks → detections and evidence clips for every stream of one sensor.

    Parameters
    ----------
    streams : sequence of StreamInfo
        One per row of the blocks.
    detector : StreamingDetector
        Built for ``len(streams)`` streams; its ``sample_rate_hz`` is the rate of every block.
    clock : CaptureClock
        Maps sample indices (shared by all streams) to UTC and says how far to trust them.
    evidence : EvidenceSection
    submit : callable
        Receives each outgoing message (the sender's durable submit).
    """

    def __init__(
        self,
        *,
        streams: Sequence[StreamInfo],
        detector: StreamingDetector,
        clock: CaptureClock,
        evidence: EvidenceSection,
        submit: Submit,
    ) -> None:
        if detector.n_streams != len(streams):
            raise ConfigError(f"pipeline: {len(streams)} streams; the detector was built for {detector.n_streams}")
        self.streams = list(streams)
        self.detector = detector
        self.clock = clock
        self.evidence = evidence
        self.submit = submit
        self.sample_rate_hz = detector.sample_rate_hz
        self.ring = AudioRing(n_streams=len(streams), capacity_samples=round(RING_S * self.sample_rate_hz))
        self._levels = [InputLevels() for _ in self.streams]
        self.n_detections = 0
        self._pending_clips: list[tuple[wire.Detection, int, int]] = []  # (detection, stream, onset sample)

    def process(self, block: Block) -> list[wire.Detection]:
        """Handle one block; returns the detections it produced (already submitted)."""
        samples = block.samples
        self.ring.write(samples)
        self._measure(samples)
        return self._handle(self.detector.push(samples))

    def finish(self) -> list[wire.Detection]:
        """End of input: flush the detector, send what it confirms and every clip still waiting."""
        detections = self._handle(self.detector.flush(), final=True)
        self.detector.pop_finished()
        return detections

    def take_levels(self) -> list[InputLevels]:
        """Levels per stream since the previous call (for heartbeats)."""
        levels, self._levels = self._levels, [InputLevels() for _ in self.streams]
        return levels

    def _measure(self, samples: np.ndarray) -> None:
        magnitude = np.abs(samples)
        sum_squares = np.einsum("ij,ij->i", samples, samples, dtype=np.float64)
        peaks = magnitude.max(axis=1, initial=0.0)
        clipped = np.count_nonzero(magnitude >= CLIP_LEVEL, axis=1)
        for i, levels in enumerate(self._levels):
            levels.sum_squares += float(sum_squares[i])
            levels.peak = max(levels.peak, float(peaks[i]))
            levels.n_samples += samples.shape[1]
            levels.n_clipped += int(clipped[i])

    def _handle(self, events: list[DetectorEvent], *, final: bool = False) -> list[wire.Detection]:
        detections = []
        for event in events:
            detection, onset_sample = self._detection(event)
            self.submit(detection)
            detections.append(detection)
            if self.evidence.enabled:
                self._pending_clips.append((detection, event.stream_index, onset_sample))
        self._send_ready_clips(final=final)
        return detections

    def _detection(self, event: DetectorEvent) -> tuple[wire.Detection, int]:
        sr = self.sample_rate_hz
        stream = self.streams[event.stream_index]
        start = max(self.ring.oldest_sample, event.search_start_sample - round(PICK_PREROLL_S * sr))
        stop = min(self.ring.n_written, event.search_stop_sample)
        excerpt = self.ring.read(start, stop, stream=event.stream_index)
        pick = None
        if event.search_start_sample - start < stop - start:
            pick = pick_arrival(
                excerpt,
                sample_rate_hz=sr,
                search_start_sample=max(0, event.search_start_sample - start),
                search_stop_sample=stop - start,
            )
        directness = 0.0  # no opinion, as a v1 sensor: nothing was picked to judge
        if pick is not None:
            onset = start + pick.sample_index
            uncertainty_s = pick.uncertainty_samples / sr
            if math.isfinite(pick.directness):  # bounded by construction; a NaN would get the detection rejected
                directness = min(max(pick.directness, -wire.MAX_DIRECTNESS), wire.MAX_DIRECTNESS)
        else:
            onset = float(event.onset_sample)
            uncertainty_s = UNPICKED_UNCERTAINTY_S
        onset_index = int(onset)
        peak = float(np.abs(excerpt[max(onset_index - start, 0) :]).max(initial=0.0))
        arrival_ns = self.clock.to_ns(onset)
        detection = wire.Detection(
            detection_id=f"{stream.sensor_id}:{arrival_ns}:{event.label}",
            sensor_id=stream.sensor_id,
            label=wire.Label(event.label),
            score=float(min(1.0, max(0.0, event.score))),
            arrival_time_ns=arrival_ns,
            arrival_uncertainty_ns=max(1, round(uncertainty_s * 1e9)),
            duration_ms=max(0.0, (stop - onset) / sr * 1000),
            peak_dbfs=min(10.0, _dbfs(peak)),
            position=stream.position,
            clock_status=self.clock.status_of(onset),
            model_version=self.detector.model_version,
            directness=directness,
        )
        self.n_detections += 1
        return detection, onset_index

    def _send_ready_clips(self, *, final: bool) -> None:
        sr = self.sample_rate_hz
        waiting = []
        for detection, stream_index, onset in self._pending_clips:
            end = onset + round(self.evidence.post_s * sr)
            if end > self.ring.n_written and not final:
                waiting.append((detection, stream_index, onset))
                continue
            start = max(self.ring.oldest_sample, onset - round(self.evidence.pre_s * sr))
            audio = self.ring.read(start, min(end, self.ring.n_written), stream=stream_index)
            self.submit(
                wire.EvidenceClip(
                    detection_id=detection.detection_id,
                    sensor_id=detection.sensor_id,
                    start_time_ns=self.clock.to_ns(start),
                    sample_rate_hz=sr,
                    data=encode_flac(audio, sample_rate_hz=sr),
                )
            )
        self._pending_clips = waiting


def encode_flac(audio: np.ndarray, *, sample_rate_hz: int) -> bytes:
    """16-bit FLAC bytes of a mono float32 clip."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate_hz, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


__all__ = ["InputLevels", "SensorPipeline", "StreamInfo", "encode_flac"]
