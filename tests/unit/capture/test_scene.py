"""The scene simulator: exact propagation delays, spreading loss, echoes, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sed.capture.scene import SceneRenderer, ground_truth, synthetic_sound
from sed.config import SceneConfig, parse_config
from sed.errors import ConfigError
from sed.units import speed_of_sound_m_per_s


def _scene(**changes: object) -> SceneConfig:
    raw = {
        "duration_s": 2.0,
        "temperature_c": 20.0,
        "noise_dbfs": -120.0,
        "sensors": [{"id": "near", "x_m": 30, "y_m": 0, "z_m": 1.5}, {"id": "far", "x_m": 120, "y_m": 0, "z_m": 1.5}],
        "events": [{"label": "gunshot", "time_s": 0.25, "x_m": 0, "y_m": 0, "clip": "synthetic"}],
    }
    raw.update(changes)
    return parse_config({"scene": raw}, SceneConfig)


def _render(scene: SceneConfig, sensor_id: str, block: int = 1000) -> np.ndarray:
    renderer = SceneRenderer(scene.scene, sensor_id)
    return np.concatenate([renderer.render(block) for _ in range(renderer.n_samples_total // block)])


def test_delay_follows_the_temperature_corrected_speed_of_sound() -> None:
    scene = _scene()
    truth = ground_truth(scene.scene)[0]
    c = speed_of_sound_m_per_s(20.0)
    assert truth.arrival_time_s["near"] == pytest.approx(0.25 + 30 / c)
    assert truth.arrival_time_s["far"] == pytest.approx(0.25 + 120 / c)
    assert truth.sound == "synthetic gunshot"
    sound = synthetic_sound("gunshot", sample_rate_hz=16000)
    for sensor_id in ("near", "far"):
        audio = _render(scene, sensor_id)
        # cross-correlate with the dry sound: the peak lag is the arrival, to the sample
        lag = int(np.argmax(np.correlate(audio, sound, mode="valid")))
        assert lag == pytest.approx(truth.arrival_time_s[sensor_id] * 16000, abs=1)


def test_level_falls_with_distance_by_spherical_spreading() -> None:
    scene = _scene()
    near, far = _render(scene, "near"), _render(scene, "far")
    # energy, not peak: a fractional delay moves an impulse's peak between samples
    level_difference_db = 10 * np.log10(np.sum(near.astype(np.float64) ** 2) / np.sum(far.astype(np.float64) ** 2))
    assert level_difference_db == pytest.approx(20 * np.log10(120 / 30), abs=0.1)


def test_wall_adds_one_later_weaker_echo() -> None:
    plain = _render(_scene(), "near")
    echoed = _render(_scene(reflectors=[{"axis": "y", "at_m": 20.0, "gain": 0.5}]), "near")
    extra = echoed - plain
    c = speed_of_sound_m_per_s(20.0)
    image_distance = np.hypot(30, 40)  # source mirrored to y = 40
    first = int(np.argmax(np.abs(extra) > 1e-4))
    assert first == pytest.approx((0.25 + image_distance / c) * 16000, abs=3)
    assert np.abs(extra).max() < np.abs(plain).max()


def test_rendering_is_deterministic_and_block_size_independent() -> None:
    scene = _scene(noise_dbfs=-40.0)
    np.testing.assert_allclose(_render(scene, "far", 1000), _render(scene, "far", 4000), atol=1e-6)


def test_unknown_sensor_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"scene has no sensor 'pole-9'"):
        SceneRenderer(_scene().scene, "pole-9")


@pytest.mark.data
def test_auto_clip_uses_a_dev_recording_when_data_is_present() -> None:
    truth = ground_truth(_scene(events=[{"label": "scream", "time_s": 0.1, "x_m": 0, "y_m": 0}]).scene)[0]
    assert truth.sound.startswith("scream/")
