"""Training code on a handful of synthetic clips (seconds, not a real training run)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from sed.dsp.frontend import FrontendParams, log_mel  # noqa: E402
from sed.models import StreamingDetector  # noqa: E402
from sed.models.backend import OnnxBackend  # noqa: E402
from sed.models.metadata import ClassThresholds, ModelMetadata  # noqa: E402
from sed.models.train import main  # noqa: E402
from sed.models.train.net import NetConfig, TemporalCnn, TorchLogMel, export_onnx  # noqa: E402

PARAMS = FrontendParams(n_fft=512, win_length_samples=512, hop_length_samples=320, n_mels=64)


def _clip(label: str, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.6, 2.5) * 16000)
    t = np.arange(n) / 16000
    if label == "gunshot":
        x = rng.standard_normal(n) * np.exp(-t / 0.05)
    elif label == "scream":
        x = np.sin(2 * np.pi * (900 + 200 * np.sin(2 * np.pi * 5 * t)) * t)
    elif label == "glass_break":
        x = rng.standard_normal(n) * np.exp(-t / 0.3) * np.sin(2 * np.pi * 4000 * t)
    else:
        x = rng.standard_normal(n) * 0.1
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    rows = []
    for label in ("gunshot", "scream", "glass_break", "negative"):
        (tmp_path / label).mkdir()
        for i in range(6):
            path = f"{label}/synth__{label}_{i}.flac"
            sf.write(tmp_path / path, _clip(label, rng), 16000, subtype="PCM_16")
            rows.append(
                {
                    "path": path,
                    "label": label,
                    "split_hint": "dev" if i < 2 else "train",
                    "subclass": "noise" if label == "negative" else label,
                    "group": f"{label}{i}",
                }
            )
    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_torch_log_mel_equals_the_numpy_front_end(rng: np.random.Generator) -> None:
    audio = rng.standard_normal((2, 8000)).astype(np.float32) * 0.1
    ours = TorchLogMel(PARAMS)(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(ours, log_mel(audio, PARAMS), atol=2e-3)


def test_exported_streaming_network_equals_the_whole_signal_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TemporalCnn(64, 3, NetConfig(layers=((16, 1), (16, 2), (24, 2), (24, 1)), head_channels=8)).eval()
    for module in model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    meta = ModelMetadata(
        version="t",
        labels=("gunshot", "scream", "glass_break"),
        frontend=PARAMS,
        window_frames=model.window_frames,
        hop_frames=model.hop_frames,
        state_shapes=tuple(model.state_shapes),
        thresholds={k: ClassThresholds(on=0.5, off=0.3) for k in ("gunshot", "scream", "glass_break")},
    )
    export_onnx(model, meta, tmp_path / "m.onnx")
    backend = OnnxBackend(tmp_path / "m.onnx")
    hop, window = model.hop_frames, model.window_frames
    rng = np.random.default_rng(0)
    features = rng.normal(-40, 15, (2, 64, window + 19 * hop)).astype(np.float32)
    with torch.no_grad():
        whole = model(torch.from_numpy(features)).numpy()
    assert whole.shape == (2, 3, 20)
    first, states = backend.run(features[:, :, :window], backend.initial_states(2))
    parts, start = [first], window
    for n_scores in (1, 3, 7, 8):
        scores, states = backend.run(features[:, :, start : start + n_scores * hop], states)
        parts.append(scores)
        start += n_scores * hop
    np.testing.assert_allclose(np.concatenate(parts, axis=2), whole, atol=1e-5)
    single = np.concatenate(
        [model(torch.from_numpy(features[:, :, k * hop : k * hop + window])).detach().numpy() for k in range(20)],
        axis=2,
    )
    np.testing.assert_allclose(single, whole, atol=1e-5)


def test_sed_train_smoke_run_writes_a_loadable_model(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "smoke.onnx"
    code = main(
        [
            "--tcnn",
            "--data",
            str(tiny_corpus),
            "--epochs",
            "1",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-teacher",
            "--version",
            "smoke",
        ],
        prog="sed train",
    )
    assert code == 0
    det = StreamingDetector.from_file(out)
    assert det.model_version == "smoke"
    assert out.with_suffix(".train.json").is_file()
    assert isinstance(det.push(np.zeros((1, 32000), np.float32)), list)
