"""File and scene sources: streamed block by block, channels as streams, clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tomli_w

from sed.capture.scene import SceneRenderer
from sed.capture.sources import FileSource, SceneSource
from sed.config import CaptureSection, SceneConfig, load_config
from sed.dsp.resample import resample
from sed.errors import AudioFormatError, ConfigError


def _capture(**fields: object) -> CaptureSection:
    return CaptureSection.model_validate({"realtime": False, "block_ms": 50.0, **fields})


def _concat(source: FileSource | SceneSource) -> np.ndarray:
    blocks = list(source.blocks())
    assert [b.first_sample for b in blocks] == list(np.cumsum([0] + [b.samples.shape[1] for b in blocks[:-1]]))
    return np.concatenate([b.samples for b in blocks], axis=1)


def test_file_channels_become_streams_resampled_as_offline(tmp_path: Path, rng: np.random.Generator) -> None:
    audio = (0.1 * rng.standard_normal((48000 * 2, 3))).astype(np.float32)
    path = tmp_path / "three.wav"
    soundfile.write(path, audio, 48000, subtype="FLOAT")
    source = FileSource(_capture(source="file", file=path, channels=[2, 0]), sample_rate_hz=16000)
    assert source.n_streams == 2
    streamed = _concat(source)
    offline = resample(np.ascontiguousarray(audio[:, [2, 0]].T), 48000, 16000)
    assert streamed.shape == offline.shape == (2, 32000)
    np.testing.assert_allclose(streamed, offline, atol=1e-6)


def test_file_channels_are_averaged_into_one_stream_by_default(tmp_path: Path, rng: np.random.Generator) -> None:
    audio = (0.1 * rng.standard_normal((16000, 2))).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, audio, 16000, subtype="FLOAT")
    streamed = _concat(FileSource(_capture(source="file", file=path), sample_rate_hz=16000))
    np.testing.assert_allclose(streamed[0], audio.mean(axis=1), atol=1e-7)


def test_file_channel_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    soundfile.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.raises(ConfigError, match=r"capture.channels = \[0, 1\]; .*mono.wav has 1 channel"):
        FileSource(_capture(source="file", file=path, channels=[0, 1]), sample_rate_hz=16000)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioFormatError, match=r"noise.wav: unreadable audio file"):
        FileSource(_capture(source="file", file=path), sample_rate_hz=16000)


def test_realtime_file_is_paced_at_the_audio_rate(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    soundfile.write(path, np.zeros(4800, np.float32), 16000)  # 0.3 s
    source = FileSource(_capture(source="file", file=path, realtime=True), sample_rate_hz=16000)
    n_samples = sum(block.samples.shape[1] for block in source.blocks())
    assert n_samples == 4800
    assert time.time_ns() >= source.clock.to_ns(n_samples)  # not delivered before it was "heard"


def test_scene_source_renders_one_stream_per_sensor(tmp_path: Path) -> None:
    scene_path = tmp_path / "scene.toml"
    scene_path.write_text(
        tomli_w.dumps(
            {
                "scene": {
                    "duration_s": 1.0,
                    "noise_dbfs": -60.0,
                    "sensors": [{"id": "pole-1.a", "x_m": 0, "y_m": 0}, {"id": "pole-1.b", "x_m": 10, "y_m": 0}],
                    "events": [{"label": "gunshot", "time_s": 0.2, "x_m": 50, "y_m": 0, "clip": "synthetic"}],
                }
            }
        )
    )
    streamed = _concat(SceneSource(_capture(source="scene", scene=scene_path), ["pole-1.b", "pole-1.a"]))
    scene = load_config(scene_path, SceneConfig).scene
    for row, sensor_id in enumerate(["pole-1.b", "pole-1.a"]):
        np.testing.assert_array_equal(streamed[row], SceneRenderer(scene, sensor_id).render(16000))
