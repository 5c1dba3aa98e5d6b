"""The two-stage detector: gate + YAMNet + head, streamed, equals the offline computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sed.dsp.frontend import FrontendParams, log_mel
from sed.errors import ModelError
from sed.models import StreamingDetector
from sed.models.gate import Gate, window_statistics
from sed.models.metadata import ClassThresholds, ModelMetadata
from sed.models.verifier import level_normalise
from sed.models.yamnet import HOP_SAMPLES, WINDOW_SAMPLES, YamnetOnnx

torch = pytest.importorskip("torch")

from sed.models.train.features import HEAD_FEATURES, clip_windows, gate_frames  # noqa: E402
from sed.models.train.head import LABELS, FittedDetector, HeadConfig, _Head, export  # noqa: E402

N_STATS = 4 * FrontendParams().n_mels


def _loudness_gate(threshold: float) -> Gate:
    """Wakes windows whose loudest frames are well above silence (max_db statistics)."""
    weights = np.zeros(N_STATS, np.float32)
    weights[64:128] = 0.05  # max_db of each band, centred on -60 dB (silence is -100 dB)
    mean = np.zeros(N_STATS, np.float32)
    mean[64:128] = -60.0
    return Gate(
        mean=mean,
        scale=np.ones(N_STATS, np.float32),
        weights=weights,
        bias=0.0,
        threshold=threshold,
    )


def _model(tmp_path: Path, gate: Gate) -> tuple[Path, FittedDetector]:
    torch.manual_seed(0)
    head = _Head(np.zeros(HEAD_FEATURES, np.float32), np.ones(HEAD_FEATURES, np.float32), HeadConfig(hidden=8))
    fitted = FittedDetector(head=head.eval(), gate=gate)
    path = tmp_path / "two_stage.onnx"
    thresholds = {label: ClassThresholds(on=0.5, off=0.4) for label in LABELS}
    export(fitted, path, version="test-two-stage", thresholds=thresholds, extra={})
    return path, fitted


def _signal(rng: np.random.Generator, duration_s: float, bursts_s: tuple[float, ...]) -> np.ndarray:
    audio = np.zeros(int(duration_s * 16000), np.float32)
    for at in bursts_s:
        start = int(at * 16000)
        burst = rng.standard_normal(4000) * np.exp(-np.arange(4000) / 800)
        audio[start : start + 4000] += (0.5 * burst / np.abs(burst).max()).astype(np.float32)
    return audio


def _stream(det: StreamingDetector, audio: np.ndarray, chunk: int) -> np.ndarray:
    blocks: list[np.ndarray] = []
    det.reset()
    det.on_scores = lambda s: blocks.append(s[0])
    for start in range(0, len(audio), chunk):
        det.push(audio[None, start : start + chunk])
    return np.concatenate(blocks, axis=1)


def test_streamed_scores_equal_the_offline_windows_whatever_the_push_size(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path, fitted = _model(tmp_path, _loudness_gate(0.0))  # wakes every window
    audio = _signal(rng, 4.0, (0.7, 2.5))
    det = StreamingDetector.from_file(path)
    streamed = _stream(det, audio, 16000)
    windows = clip_windows(audio)[::2][: streamed.shape[1]]  # verified every other YAMNet hop
    yamnet_scores, embedding = YamnetOnnx.from_file().run(level_normalise(np.ascontiguousarray(windows)))
    offline = fitted.head_scores(np.concatenate([embedding, yamnet_scores], axis=1)).T
    assert streamed.shape == (len(LABELS), 1 + (len(audio) - WINDOW_SAMPLES) // (2 * HOP_SAMPLES))
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    np.testing.assert_allclose(_stream(det, audio, 1234), streamed, atol=1e-6)
    assert det.wake_counts == (streamed.shape[1], streamed.shape[1])


def test_gate_sends_only_loud_windows_to_yamnet(tmp_path: Path, rng: np.random.Generator) -> None:
    gate = _loudness_gate(0.5)
    path, _ = _model(tmp_path, gate)
    audio = _signal(rng, 6.0, (4.2,))
    det = StreamingDetector.from_file(path)
    streamed = _stream(det, audio, 4000)
    n_windows, n_woken = det.wake_counts
    frames = log_mel(audio[None, :], FrontendParams())[0]
    per_window, per_hop = gate_frames()
    per_hop *= 2  # verified every other YAMNet hop
    stats = window_statistics(np.stack([frames[:, k * per_hop : k * per_hop + per_window] for k in range(n_windows)]))
    expected = gate.wakes(stats)
    assert 0 < n_woken == expected.sum() < n_windows
    assert np.all(streamed[:, ~expected] == 0.0)
    assert np.all(streamed[:, expected].max(axis=0) > 0.0)
    # the burst (4.2 s to 4.45 s) lies in window 4 only (0.96 s hop, 0.975 s window)
    assert np.flatnonzero(expected).tolist() == [4]


def test_metadata_names_a_broken_gate(tmp_path: Path) -> None:
    path, _ = _model(tmp_path, _loudness_gate(0.5))
    meta = StreamingDetector.from_file(path).metadata
    doc = json.loads(meta.to_json())
    assert doc["verifier"]["backbone"] == "yamnet.onnx"
    assert ModelMetadata.from_json(meta.to_json()).to_json() == meta.to_json()
    broken = json.loads(meta.to_json())
    broken["verifier"]["gate"]["weights"] = broken["verifier"]["gate"]["weights"][:10]
    with pytest.raises(ModelError, match=r"verifier\.gate"):
        ModelMetadata.from_json(json.dumps(broken), where="m.onnx")
    broken = json.loads(meta.to_json())
    broken["verifier"]["backbone"] = "../elsewhere.onnx"
    with pytest.raises(ModelError, match=r"verifier\.backbone"):
        ModelMetadata.from_json(json.dumps(broken), where="m.onnx")
    broken = json.loads(meta.to_json())
    broken["verifier"]["gate"]["threshold"] = float("nan")
    with pytest.raises(ModelError, match="threshold"):
        ModelMetadata.from_json(json.dumps(broken), where="m.onnx")


def test_missing_backbone_is_one_clear_error(tmp_path: Path) -> None:
    path, _ = _model(tmp_path, _loudness_gate(0.5))
    (tmp_path / "yamnet.onnx").unlink()
    with pytest.raises(ModelError, match=r"yamnet\.onnx"):
        StreamingDetector.from_file(path)


def test_gate_round_trips_and_rejects_bad_parameters() -> None:
    gate = _loudness_gate(0.3)
    again = Gate.from_dict(json.loads(json.dumps(gate.to_dict())), where="gate")
    stats = np.random.default_rng(1).normal(-40, 20, (5, N_STATS)).astype(np.float32)
    np.testing.assert_allclose(again.probability(stats), gate.probability(stats), atol=1e-6)
    with pytest.raises(ModelError, match="scale"):
        Gate(mean=gate.mean, scale=np.zeros(N_STATS, np.float32), weights=gate.weights, bias=0.0, threshold=0.5)
    with pytest.raises(ModelError, match="threshold"):
        Gate(mean=gate.mean, scale=gate.scale, weights=gate.weights, bias=0.0, threshold=1.0)
    with pytest.raises(ModelError, match="unknown"):
        Gate.from_dict({**gate.to_dict(), "extra": 1}, where="gate")
