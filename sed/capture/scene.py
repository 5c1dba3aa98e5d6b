"""A simulated city block: sound sources heard by pole sensors.

Each event's sound (a real clip from ``../shared/data/events`` when present, else a
clearly labelled synthetic sound) propagates to every sensor at the speed of sound for
the scene's temperature, ``331.3 * sqrt(1 + T / 273.15)`` m/s, with spherical spreading
(level falls 6 dB per doubling of distance) and, per configured wall, one image-source
echo. Delays are applied with sub-sample precision (an FFT phase ramp), so the arrival
times in :func:`ground_truth` are exact. Background noise is low-pass (traffic-like)
Gaussian noise at the configured RMS level.

Rendering is sequential and deterministic: every process that renders sensor ``k`` of a
scene produces the same samples, so sensors can run as separate processes.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal

from sed.config import SceneEvent, SceneSection, SceneSensor
from sed.dsp.audio_io import read_audio
from sed.errors import ConfigError
from sed.paths import shared_data_dir
from sed.units import speed_of_sound_m_per_s

#: Distance at which ``SceneEvent.level_db`` is the clip's peak level, metres.
REFERENCE_DISTANCE_M = 10.0
#: Closest a source is treated as being to a microphone (avoids infinite gain), metres.
MIN_DISTANCE_M = 1.0
#: A clip's sound starts at its first sample reaching this fraction of its peak (-20 dB).
LOUD_FRACTION_OF_PEAK = 0.1
#: Audio kept before that first loud sample when a clip is trimmed, s.
LEAD_IN_S = 0.1
#: Pole coefficient of the background noise's low-pass (traffic-like spectrum).
NOISE_POLE = 0.95
#: Preferred sources when a clip is picked automatically: the cleanest isolated events.
AUTO_CLIP_SOURCES = {
    "gunshot": ("sesatrain", "sesatest"),
    "scream": ("screamset", "meghana"),
    "glass_break": ("assaf", "esc50"),
    "negative": ("esc50", "us8k"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TruthEvent:
    """Ground truth of one scripted event.

    ``arrival_time_s`` maps sensor id to the time the direct sound of the played clip's
    first sample reaches that sensor, seconds after the scene start. The clip's sound
    proper starts ``onset_s`` into it (its first sample at -20 dB of the peak) and the
    clip lasts ``duration_s``.
    """

    index: int
    label: str
    emission_time_s: float
    position_m: tuple[float, float, float]
    sound: str  # the clip's path relative to the data folder, or "synthetic <label>"
    arrival_time_s: dict[str, float]
    onset_s: float
    duration_s: float


def sound_source(event: SceneEvent, index: int, *, seed: int) -> tuple[Path | None, str]:
    """Which sound plays for one scripted event: (file or ``None`` for synthetic, description).

    ``clip = "auto"`` picks a dev-split clip of the event's label (deterministically from
    ``seed`` and ``index``) from the shared data, else a synthetic sound.
    """
    if isinstance(event.clip, Path):
        return event.clip, str(event.clip)
    data = shared_data_dir()
    if event.clip == "auto" and data is not None and (data / "events" / "manifest.csv").exists():
        path = _auto_clip(data / "events", str(event.label), seed=seed, index=index)
        if path is not None:
            return data / "events" / path, path
    return None, f"synthetic {event.label}"


def pick_sound(event: SceneEvent, index: int, *, seed: int, sample_rate_hz: int) -> np.ndarray:
    """The waveform of one scripted event at ``sample_rate_hz``, peak-normalised to 1.

    At most ``event.max_duration_s`` of it, starting :data:`LEAD_IN_S` before its first
    sample at -20 dB of the peak (recordings often open with seconds of background).
    """
    path, _ = sound_source(event, index, seed=seed)
    if path is None:
        sound = synthetic_sound(str(event.label), sample_rate_hz=sample_rate_hz, seed=seed + index)
    else:
        sound = _normalise(read_audio(path, sample_rate_hz=sample_rate_hz))
    first_loud = int(np.argmax(np.abs(sound) >= LOUD_FRACTION_OF_PEAK))
    start = max(0, first_loud - round(LEAD_IN_S * sample_rate_hz))
    return sound[start : start + round(event.max_duration_s * sample_rate_hz)]


def _auto_clip(events_dir: Path, label: str, *, seed: int, index: int) -> str | None:
    with (events_dir / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = [
            row["path"]
            for row in csv.DictReader(handle)
            if row["label"] == label
            and row["split_hint"] == "dev"
            and row["path"].split("/")[-1].split("__")[0] in AUTO_CLIP_SOURCES[label]
        ]
    if not rows:
        return None
    rows.sort()
    return rows[np.random.default_rng([seed, index]).integers(len(rows))]


def synthetic_sound(label: str, *, sample_rate_hz: int, seed: int = 0) -> np.ndarray:
    """A labelled stand-in for a real recording, peak 1.

    gunshot: a steep pressure step and a 40 ms decaying noise burst; scream: a 1.2 s
    harmonic tone gliding 900→1300 Hz with vibrato; glass_break: a crack followed by
    ringing 3–7 kHz fragments; negative: a soft 0.5 s noise swell.
    """
    rng = np.random.default_rng(seed)
    sr = sample_rate_hz
    if label == "gunshot":
        t = np.arange(int(0.4 * sr)) / sr
        burst = rng.standard_normal(t.size) * np.exp(-t / 0.04)
        burst[: int(0.002 * sr)] += np.linspace(1.0, -0.5, int(0.002 * sr)) * 3
        sound = burst
    elif label == "scream":
        t = np.arange(int(1.2 * sr)) / sr
        f0 = 900 + 400 * t / t[-1] + 40 * np.sin(2 * np.pi * 6 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        sound = sum(np.sin(k * phase) / k for k in range(1, 5)) * np.minimum(1, np.minimum(t, t[-1] - t) / 0.1)
        sound = sound + 0.05 * rng.standard_normal(t.size)
    elif label == "glass_break":
        t = np.arange(int(0.8 * sr)) / sr
        sound = rng.standard_normal(t.size) * np.exp(-t / 0.01)
        for _ in range(12):
            start = rng.uniform(0, 0.5)
            f = rng.uniform(3000, min(7000, 0.45 * sr))
            ring = np.sin(2 * np.pi * f * (t - start)) * np.exp(-(t - start) / 0.03)
            sound = sound + np.where(t >= start, ring, 0.0) * rng.uniform(0.3, 1.0)
    else:
        t = np.arange(int(0.5 * sr)) / sr
        sound = rng.standard_normal(t.size) * np.sin(np.pi * t / t[-1]) * 0.3
        sound = scipy.signal.lfilter([1.0], [1.0, -0.9], sound)
    return _normalise(np.asarray(sound, dtype=np.float64)).astype(np.float32)


def _normalise(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio / peak if peak > 0 else audio).astype(np.float32)


def _paths(event: SceneEvent, sensor: SceneSensor, scene: SceneSection) -> list[tuple[float, float]]:
    """(distance_m, gain) of the direct path and each wall echo from ``event`` to ``sensor``."""
    source = np.array([event.x_m, event.y_m, event.z_m])
    mic = np.array([sensor.x_m, sensor.y_m, sensor.z_m])
    paths = [(float(np.linalg.norm(source - mic)), 1.0)]
    for wall in scene.reflectors:
        axis = 0 if wall.axis == "x" else 1
        if (source[axis] - wall.at_m) * (mic[axis] - wall.at_m) <= 0:
            continue  # opposite sides of the wall: no reflection reaches the sensor
        image = source.copy()
        image[axis] = 2 * wall.at_m - source[axis]
        paths.append((float(np.linalg.norm(image - mic)), wall.gain))
    return paths


def ground_truth(scene: SceneSection) -> list[TruthEvent]:
    """Exact emission and arrival times of every scripted event."""
    c = speed_of_sound_m_per_s(scene.temperature_c)
    truth = []
    for index, event in enumerate(scene.events):
        arrivals = {s.id: event.time_s + _paths(event, s, scene)[0][0] / c for s in scene.sensors}
        _, description = sound_source(event, index, seed=scene.seed)
        played = pick_sound(event, index, seed=scene.seed, sample_rate_hz=scene.sample_rate_hz)
        truth.append(
            TruthEvent(
                index=index,
                label=str(event.label),
                emission_time_s=event.time_s,
                position_m=(event.x_m, event.y_m, event.z_m),
                sound=description,
                arrival_time_s=arrivals,
                onset_s=float(np.argmax(np.abs(played) >= LOUD_FRACTION_OF_PEAK)) / scene.sample_rate_hz,
                duration_s=played.size / scene.sample_rate_hz,
            )
        )
    return truth


class SceneRenderer:
    """Renders one sensor's stream of a scene, block after block.

    Parameters
    ----------
    scene : SceneSection
    sensor_id : str
        One of ``scene.sensors``.
    """

    def __init__(self, scene: SceneSection, sensor_id: str) -> None:
        sensors = {s.id: (i, s) for i, s in enumerate(scene.sensors)}
        if sensor_id not in sensors:
            raise ConfigError(f"scene has no sensor {sensor_id!r}; it has {sorted(sensors)}")
        index, self.sensor = sensors[sensor_id]
        self.scene = scene
        self.sample_rate_hz = scene.sample_rate_hz
        self.n_samples_total = round(scene.duration_s * scene.sample_rate_hz)
        self.position = 0
        self._rng = np.random.default_rng([scene.seed, index])
        self._noise_state = np.zeros(1)
        self._noise_gain = 10 ** (scene.noise_dbfs / 20) * math.sqrt(1 - NOISE_POLE**2)
        self._contributions = self._place_events()

    def _place_events(self) -> list[tuple[int, np.ndarray]]:
        c = speed_of_sound_m_per_s(self.scene.temperature_c)
        sr = self.sample_rate_hz
        placed = []
        for index, event in enumerate(self.scene.events):
            sound = pick_sound(event, index, seed=self.scene.seed, sample_rate_hz=sr)
            level = 10 ** (event.level_db / 20) * REFERENCE_DISTANCE_M
            for distance_m, gain in _paths(event, self.sensor, self.scene):
                arrival = (event.time_s + distance_m / c) * sr
                whole = math.floor(arrival)
                amplitude = level * gain / max(distance_m, MIN_DISTANCE_M)
                placed.append((whole, _fractional_delay(sound, arrival - whole) * amplitude))
        return placed

    def render(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` samples, float32; past the scene's end, noise continues.

        Samples are not clipped: a sensor's own capture stage decides what saturates.
        """
        white = self._rng.standard_normal(n_samples) * self._noise_gain
        out, self._noise_state = scipy.signal.lfilter([1.0], [1.0, -NOISE_POLE], white, zi=self._noise_state)
        start, stop = self.position, self.position + n_samples
        for first, waveform in self._contributions:
            lo, hi = max(start, first), min(stop, first + waveform.size)
            if lo < hi:
                out[lo - start : hi - start] += waveform[lo - first : hi - first]
        self.position = stop
        return out.astype(np.float32)


def _fractional_delay(sound: np.ndarray, fraction: float) -> np.ndarray:
    """Delay by ``fraction`` of a sample (0 <= fraction < 1) with an FFT phase ramp."""
    n = scipy.fft.next_fast_len(sound.size + 64)
    spectrum = scipy.fft.rfft(sound.astype(np.float64), n)
    spectrum *= np.exp(-2j * np.pi * np.fft.rfftfreq(n) * fraction)
    return scipy.fft.irfft(spectrum, n)[: sound.size + 64].astype(np.float32)


__all__ = ["SceneRenderer", "TruthEvent", "ground_truth", "pick_sound", "sound_source", "synthetic_sound"]
