"""Sensor pipeline: batched streams, arrival times on the clock, evidence clips, clock flags.

The model is the loudness detector of :mod:`tests.unit.capture.energy_model` (a real ONNX
file through the real StreamingDetector), so which sounds are detected is known exactly.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import numpy as np
import pytest
import soundfile

from sed import wire
from sed.capture.clock import SampleClock
from sed.capture.pipeline import SensorPipeline, StreamInfo
from sed.capture.sources import Block
from sed.config import EvidenceSection
from sed.models import StreamingDetector
from sed.units import NS_PER_S
from tests.conftest import SAMPLE_RATE_HZ, shot_burst
from tests.unit.capture.energy_model import build_energy_model

T0_NS = 1_800_000_000 * NS_PER_S
BLOCK = 1600


@pytest.fixture(scope="module")
def energy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_energy_model(tmp_path_factory.mktemp("model") / "energy.onnx")


def _streams(rng: np.random.Generator, onsets_s: list[float | None], duration_s: float = 6.0) -> np.ndarray:
    """Noise at -60 dBFS with one shot-like burst per stream (or none)."""
    n = round(duration_s * SAMPLE_RATE_HZ)
    audio = (rng.standard_normal((len(onsets_s), n)) * 1e-3).astype(np.float32)
    for row, onset_s in enumerate(onsets_s):
        if onset_s is not None:
            burst = 0.5 * shot_burst(rng)
            start = round(onset_s * SAMPLE_RATE_HZ)
            audio[row, start : start + burst.size] += burst[: n - start]
    return audio


def _run(
    model: Path,
    audio: np.ndarray,
    *,
    ids: list[str] | None = None,
    evidence: EvidenceSection | None = None,
    clock: SampleClock | None = None,
    finish: bool = True,
) -> list[wire.Detection | wire.EvidenceClip]:
    ids = ids or [f"pole-1.{i}" for i in range(audio.shape[0])]
    sent: list[wire.Detection | wire.EvidenceClip] = []
    pipeline = SensorPipeline(
        streams=[StreamInfo(sensor_id=i, position=wire.Position(x_m=k, y_m=0.0)) for k, i in enumerate(ids)],
        detector=StreamingDetector.from_file(model, n_streams=audio.shape[0]),
        clock=clock or SampleClock(sample_rate_hz=SAMPLE_RATE_HZ, anchor_ns=T0_NS),
        evidence=evidence or EvidenceSection(),
        submit=sent.append,
    )
    for start in range(0, audio.shape[1], BLOCK):
        pipeline.process(Block(samples=np.ascontiguousarray(audio[:, start : start + BLOCK]), first_sample=start))
    if finish:
        pipeline.finish()
    return sent


def _detections(sent: list) -> list[wire.Detection]:
    return [m for m in sent if isinstance(m, wire.Detection)]


def test_batched_streams_give_the_same_detections_as_each_stream_alone(
    energy_model: Path, rng: np.random.Generator
) -> None:
    audio = _streams(rng, [1.5, 2.25, None, 4.0])
    batched = _detections(_run(energy_model, audio))
    alone = [
        d for row in range(4) for d in _detections(_run(energy_model, audio[row : row + 1], ids=[f"pole-1.{row}"]))
    ]
    assert [d.sensor_id for d in batched] == ["pole-1.0", "pole-1.1", "pole-1.3"]
    assert len(alone) == 3
    for together, single in zip(batched, sorted(alone, key=lambda d: d.sensor_id), strict=True):
        assert together.score == pytest.approx(single.score, abs=1e-5)  # float sums in another order
        assert msgspec.structs.replace(together, score=single.score, position=single.position) == single


def test_arrival_time_is_the_onset_on_the_sample_clock(energy_model: Path, rng: np.random.Generator) -> None:
    audio = _streams(rng, [2.0, 3.1234])
    detections = _detections(_run(energy_model, audio))
    assert len(detections) == 2
    for detection, onset_s in zip(detections, [2.0, 3.1234], strict=True):
        assert detection.arrival_time_ns == pytest.approx(T0_NS + onset_s * NS_PER_S, abs=500_000)
        assert detection.arrival_uncertainty_ns < 1_000_000
        assert detection.clock_status is wire.ClockStatus.SYNCED
        assert detection.label is wire.Label.GUNSHOT
    assert detections[1].position == wire.Position(x_m=1, y_m=0.0)


def test_evidence_clip_is_flac_from_pre_to_post_around_the_onset(energy_model: Path, rng: np.random.Generator) -> None:
    audio = _streams(rng, [2.0], duration_s=6.0)
    sent = _run(energy_model, audio, evidence=EvidenceSection(pre_s=0.5, post_s=1.5))
    (detection,) = _detections(sent)
    (clip,) = [m for m in sent if isinstance(m, wire.EvidenceClip)]
    assert clip.detection_id == detection.detection_id and clip.codec == "flac"
    samples, rate = soundfile.read(io.BytesIO(clip.data), dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    assert samples.size == 2 * SAMPLE_RATE_HZ
    one_sample_ns = NS_PER_S / SAMPLE_RATE_HZ
    assert clip.start_time_ns == pytest.approx(detection.arrival_time_ns - 0.5 * NS_PER_S, abs=one_sample_ns)
    first = round((clip.start_time_ns - T0_NS) * SAMPLE_RATE_HZ / NS_PER_S)
    np.testing.assert_allclose(samples, audio[0, first : first + samples.size], atol=1 / 32768)
    assert len(clip.data) < samples.size * 2  # compressed below 16-bit PCM


def test_with_clips_disabled_only_detections_leave(energy_model: Path, rng: np.random.Generator) -> None:
    sent = _run(energy_model, _streams(rng, [1.5, 2.5]), evidence=EvidenceSection(enabled=False))
    assert len(sent) == 2
    assert all(isinstance(m, wire.Detection) for m in sent)


def test_detection_carries_the_clock_status_of_its_onset(energy_model: Path, rng: np.random.Generator) -> None:
    clock = SampleClock(sample_rate_hz=SAMPLE_RATE_HZ, anchor_ns=T0_NS, status=wire.ClockStatus.UNSYNCED)
    (detection,) = _detections(_run(energy_model, _streams(rng, [2.0]), clock=clock))
    assert detection.clock_status is wire.ClockStatus.UNSYNCED


def test_finish_reports_a_sound_at_the_very_end_and_sends_its_clip(
    energy_model: Path, rng: np.random.Generator
) -> None:
    audio = _streams(rng, [5.97], duration_s=6.0)
    assert _detections(_run(energy_model, audio, finish=False)) == []  # no whole window holds it yet
    sent = _run(energy_model, audio, evidence=EvidenceSection(pre_s=1.0, post_s=2.0))
    (detection,) = _detections(sent)
    assert detection.arrival_time_ns == pytest.approx(T0_NS + 5.97 * NS_PER_S, abs=500_000)
    (clip,) = [m for m in sent if isinstance(m, wire.EvidenceClip)]
    samples, _ = soundfile.read(io.BytesIO(clip.data), dtype="float32")
    assert samples.size == pytest.approx(1.03 * SAMPLE_RATE_HZ, abs=2)  # the audio that exists: 1 s + 0.03 s


def test_levels_are_reported_per_stream(energy_model: Path) -> None:
    audio = np.zeros((2, 16000), np.float32)
    audio[0] = 0.1
    audio[1, :160] = 1.0
    pipeline = SensorPipeline(
        streams=[StreamInfo(sensor_id=i, position=wire.Position(x_m=0, y_m=0)) for i in ("a.0", "a.1")],
        detector=StreamingDetector.from_file(energy_model, n_streams=2),
        clock=SampleClock(sample_rate_hz=SAMPLE_RATE_HZ),
        evidence=EvidenceSection(),
        submit=lambda m: None,
    )
    pipeline.process(Block(samples=audio, first_sample=0))
    first, second = pipeline.take_levels()
    assert first.rms_dbfs() == pytest.approx(-20.0, abs=0.01)
    assert first.clipping_fraction() == 0.0
    assert second.clipping_fraction() == pytest.approx(0.01)
    assert [levels.n_samples for levels in pipeline.take_levels()] == [0, 0]


def test_detection_carries_the_directness_of_its_onset_pick(energy_model: Path, rng: np.random.Generator) -> None:
    # A shot out of quiet noise dominates the 300 ms before it and jumps far out of the noise:
    # the picker's directness is at its ceiling (3 + 2, sed.dsp.onset.directness), and it travels on the wire.
    (detection,) = _detections(_run(energy_model, _streams(rng, [2.0])))
    assert detection.directness == 5.0
    decoded = wire.decode(wire.encode(detection))
    assert isinstance(decoded, wire.Detection) and decoded.directness == detection.directness
