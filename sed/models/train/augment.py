"""Street augmentation and batch sampling for training (numpy, seeded).

Each training example is a crop of ``n_samples`` samples holding one clip: a positive
event (label ``gunshot``/``scream``/``glass_break``) or a negative, usually mixed into a
different negative clip as background, then degraded the way a pole microphone hears
sounds: SNR −5…+20 dB against the background, level (−40…−1 dBFS peak), distance
(low-pass 1.5–8 kHz), band-limiting to 6 kHz (12 kHz recorders), reverberation and a wall
echo, and clipping. Short clips sit at a random place in silence, as in ``sed bench
detect``'s padded clips. Targets are clip-level (multiple-instance learning): the event is
somewhere in the crop.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal
import soxr

from sed.models.train.data import Clip, ClipAudio


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Probabilities and ranges of each degradation."""

    p_positive: float = 0.5
    p_background: float = 0.8
    snr_db: tuple[float, float] = (-5.0, 20.0)
    peak_dbfs: tuple[float, float] = (-40.0, -1.0)
    p_lowpass: float = 0.3
    lowpass_hz: tuple[float, float] = (1500.0, 8000.0)
    p_band_limit: float = 0.2
    band_limit_rate_hz: int = 12000
    p_reverb: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 1.2)
    p_echo: float = 0.2
    p_clip: float = 0.1


class BatchSampler:
    """Draw augmented training batches from decoded clips.

    Parameters
    ----------
    data : ClipAudio
        Training clips (train split only).
    labels : tuple of str
        Model output rows.
    n_samples : int
        Crop length, samples.
    rng : np.random.Generator
    config : AugmentConfig
    """

    def __init__(
        self,
        data: ClipAudio,
        labels: tuple[str, ...],
        *,
        n_samples: int,
        rng: np.random.Generator,
        config: AugmentConfig | None = None,
        teacher_centres: np.ndarray | None = None,
        teacher_scores: np.ndarray | None = None,
    ) -> None:
        self.data = data
        self.labels = labels
        self.n_samples = n_samples
        self.rng = rng
        self.config = config or AugmentConfig()
        self.rate_hz = data.sample_rate_hz
        n = len(data)
        self.centres = teacher_centres if teacher_centres is not None else np.full(n, -1, np.int64)
        self.teacher = teacher_scores if teacher_scores is not None else np.zeros(n, np.float32)
        # Base sampling weight of each clip: a source (positives) or sub-class (negatives) is
        # drawn with probability ~ sqrt(its clips), then a clip of it, so big groups do not
        # drown small ones and tiny ones are not repeated to death.
        self.pools: dict[str, np.ndarray] = {}
        self.base: dict[str, np.ndarray] = {}
        for pool in (*labels, "negative"):
            rows = [
                i
                for i, c in enumerate(data.clips)
                if (c.label == pool or (pool == "negative" and c.label not in labels))
            ]
            keys = [self._group_key(data.clips[i], pool) for i in rows]
            sizes = {k: keys.count(k) for k in set(keys)}
            weights = np.array([np.sqrt(sizes[k]) / sizes[k] for k in keys], np.float64)
            self.pools[pool] = np.array(rows, np.int64)
            self.base[pool] = weights
        self.hardness = np.ones(n, np.float64)
        self.group_members: dict[str, list[int]] = {}
        for i, c in enumerate(data.clips):
            self.group_members.setdefault(c.group, []).append(i)
        empty = [pool for pool, rows in self.pools.items() if not len(rows)]
        if empty:
            raise ValueError(f"training clips lack label(s) {empty}")

    @staticmethod
    def _group_key(clip: Clip, pool: str) -> str:
        if pool == "negative":
            return clip.subclass.split(":")[0]
        return clip.source.rstrip("0123456789").replace("sesatest", "sesatrain")

    def set_hardness(self, scores: np.ndarray, *, floor: float = 0.25) -> None:
        """Hard-negative mining: weight each negative clip by how strongly the model fires on it.

        ``scores`` [shape=(n_clips, n_labels)] are the current model's clip maxima; a negative
        clip's weight becomes ``floor + max score``. Positives keep their weight: mining them
        would amplify the weak labels (glass chunks without audible glass) into false alarms.
        """
        for i, clip in enumerate(self.data.clips):
            if clip.label not in self.labels:
                self.hardness[i] = floor + float(scores[i].max())

    def _draw(self, pool: str) -> int:
        rows = self.pools[pool]
        weights = self.base[pool] * self.hardness[rows]
        return int(rows[self.rng.choice(len(rows), p=weights / weights.sum())])

    def _draw_background(self) -> int:
        """Any negative clip, uniformly (backgrounds are not mined)."""
        rows = self.pools["negative"]
        return int(rows[self.rng.integers(len(rows))])

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return audio ``(batch, n_samples)`` float32 and targets ``(batch, n_labels)`` float32."""
        audio = np.zeros((batch_size, self.n_samples), np.float32)
        targets = np.zeros((batch_size, len(self.labels)), np.float32)
        for b in range(batch_size):
            if self.rng.random() < self.config.p_positive:
                k = int(self.rng.integers(len(self.labels)))
                index = self._draw(self.labels[k])
                targets[b, k] = 1.0
            else:
                index = self._draw("negative")
            audio[b] = self.example(index)
        return audio, targets

    def _source_wave(self, index: int) -> np.ndarray:
        """The clip, or for short chunks of a multi-chunk upload (weak bag labels), 1–4 chunks of
        that upload in a row: the bag, not each chunk, is known to hold the event."""
        wave = self.data.waveform(index)
        members = self.group_members[self.data.clips[index].group]
        if len(wave) * 2 < self.n_samples and len(members) > 1 and self.rng.random() < 0.5:
            extra = self.rng.choice(members, size=min(3, len(members)), replace=False)
            wave = np.concatenate([wave, *[self.data.waveform(int(j)) for j in extra]])[: self.n_samples]
        return wave

    def example(self, index: int) -> np.ndarray:
        cfg, rng = self.config, self.rng
        crop = np.zeros(self.n_samples, np.float32)
        centre = int(self.centres[index]) if self.teacher[index] >= 0.2 else -1
        _place(crop, self._source_wave(index), rng, centre=centre)
        event_rms = _active_rms(crop)
        if rng.random() < cfg.p_background:
            background = np.zeros(self.n_samples, np.float32)
            _place(background, self.data.waveform(self._draw_background()), rng, fill=True)
            bg_rms = float(np.sqrt(np.mean(background**2)))
            if bg_rms > 1e-6 and event_rms > 1e-6:
                snr_db = rng.uniform(*cfg.snr_db)
                crop += background * (event_rms / bg_rms * 10 ** (-snr_db / 20))
        if rng.random() < cfg.p_reverb:
            crop = _reverb(crop, self.rate_hz, rng.uniform(*cfg.rt60_s), rng)
        if rng.random() < cfg.p_echo:
            delay = int(rng.uniform(0.02, 0.2) * self.rate_hz)
            crop[delay:] += rng.uniform(0.2, 0.6) * crop[:-delay].copy()
        if rng.random() < cfg.p_lowpass:
            sos = scipy.signal.butter(2, rng.uniform(*cfg.lowpass_hz), fs=self.rate_hz, output="sos")
            crop = scipy.signal.sosfilt(sos, crop).astype(np.float32)
        if rng.random() < cfg.p_band_limit and cfg.band_limit_rate_hz < self.rate_hz:
            low = soxr.resample(crop, self.rate_hz, cfg.band_limit_rate_hz)
            crop = soxr.resample(low, cfg.band_limit_rate_hz, self.rate_hz)[: self.n_samples]
            crop = np.pad(crop, (0, self.n_samples - len(crop)))
        peak = float(np.max(np.abs(crop)))
        if peak > 0:
            crop *= 10 ** (rng.uniform(*cfg.peak_dbfs) / 20) / peak
            if rng.random() < cfg.p_clip:
                crop = np.clip(crop * 10 ** (rng.uniform(6, 20) / 20), -1.0, 1.0)
        return crop.astype(np.float32)


def _place(
    out: np.ndarray, wave: np.ndarray, rng: np.random.Generator, *, fill: bool = False, centre: int = -1
) -> None:
    """Copy ``wave`` into ``out``: a random crop of long clips (holding ``centre`` when given,
    else biased to hold the loudest part), or the whole clip at a random position (tiled
    when ``fill``) for short ones."""
    n = len(out)
    if len(wave) >= n:
        if fill:
            start = int(rng.integers(len(wave) - n + 1))
        elif 0 <= centre < len(wave):
            start = int(np.clip(centre - rng.uniform(n / 8, 7 * n / 8), 0, len(wave) - n))
        else:
            peak = int(np.argmax(np.abs(wave)))
            lo, hi = max(0, peak - n + n // 8), min(len(wave) - n, peak - n // 8)
            start = (
                int(rng.integers(lo, hi + 1))
                if hi >= lo and rng.random() < 0.7
                else int(rng.integers(len(wave) - n + 1))
            )
        out[:] = wave[start : start + n]
    elif fill:
        reps = int(np.ceil(n / max(1, len(wave))))
        tiled = np.tile(wave, reps)
        start = int(rng.integers(len(tiled) - n + 1))
        out[:] = tiled[start : start + n]
    else:
        start = int(rng.integers(n - len(wave) + 1))
        out[start : start + len(wave)] = wave


def _active_rms(x: np.ndarray, frame: int = 320) -> float:
    """RMS over the loudest fifth of 20 ms frames (the event, not the silence around it)."""
    n = len(x) // frame
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    energy = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    top = np.sort(energy)[-max(1, n // 5) :]
    return float(np.sqrt(np.mean(top)))


def _reverb(x: np.ndarray, rate_hz: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    n = int(rt60_s * rate_hz)
    t = np.arange(n) / rate_hz
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    direct_to_reverberant_db = rng.uniform(-5.0, 10.0)
    tail *= np.sqrt(10 ** (-direct_to_reverberant_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return scipy.signal.fftconvolve(x, tail.astype(np.float32))[: len(x)].astype(np.float32)


__all__ = ["AugmentConfig", "BatchSampler"]
