"""Window features of the training clips: what the gate and the YAMNet head see, cached.

Every clip is cut into YAMNet windows (0.975 s every 0.48 s from the clip's first sample,
the last one padded with silence) and, per window, we keep the gate's log-mel statistics
(:func:`sed.models.gate.window_statistics`) and YAMNet's 1024-d embedding and 521 scores
(the shipped ``yamnet.onnx`` on the level-normalised window, i.e. what the pole computes). Each clip is also seen
band-limited to 4 kHz (resampled to 8 kHz and back), as an 8 kHz microphone or a distant
source would deliver it: the model must not learn "no high band" = "not an event".
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import scipy.signal
from tqdm import tqdm

from sed.dsp.frontend import FrontendParams, log_mel
from sed.models.gate import window_statistics
from sed.models.train.data import ClipAudio
from sed.models.verifier import level_normalise
from sed.models.yamnet import EMBEDDING_SIZE, HOP_SAMPLES, N_CLASSES, SAMPLE_RATE_HZ, WINDOW_SAMPLES, YamnetOnnx

#: Versions of every clip: as recorded, and band-limited to 4 kHz.
VARIANTS = ("full", "8k")
#: Bump when what a window's features mean changes (the cache file name carries it).
FEATURES_VERSION = 2
#: Width of the head's input: embedding then scores.
HEAD_FEATURES = EMBEDDING_SIZE + N_CLASSES


def n_windows(n_samples: int) -> int:
    """YAMNet windows covering ``n_samples`` (at least one; the last one padded)."""
    return 1 + max(0, -(-(n_samples - WINDOW_SAMPLES) // HOP_SAMPLES))


def gate_frames() -> tuple[int, int]:
    """Front-end frames per YAMNet window and per hop: ``(per_window, per_hop)``.

    Window ``k`` holds frames ``[k * per_hop, k * per_hop + per_window)``: every frame whose
    samples lie inside it.
    """
    p = FrontendParams()
    return (WINDOW_SAMPLES - p.n_fft) // p.hop_length_samples + 1, HOP_SAMPLES // p.hop_length_samples


def band_limit(wave: np.ndarray) -> np.ndarray:
    """``wave`` at 16 kHz through 8 kHz and back (nothing above 4 kHz)."""
    down = scipy.signal.resample_poly(wave, 1, 2)
    return scipy.signal.resample_poly(down, 2, 1)[: len(wave)].astype(np.float32)


@dataclasses.dataclass
class WindowFeatures:
    """Per-window features of a clip set.

    Attributes
    ----------
    clip_index : np.ndarray [shape=(n,), dtype=int32]
    variant : np.ndarray [shape=(n,), dtype=int8]
        Index into :data:`VARIANTS`.
    head : np.ndarray [shape=(n, HEAD_FEATURES), dtype=float16]
        YAMNet embedding then scores.
    gate : np.ndarray [shape=(n, 4 * n_mels), dtype=float32]
    """

    clip_index: np.ndarray
    variant: np.ndarray
    head: np.ndarray
    gate: np.ndarray

    def concat(self, other: WindowFeatures) -> WindowFeatures:
        """Both sets, ``other``'s clip indices kept as they are (offset them first)."""
        return WindowFeatures(
            *(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in dataclasses.fields(self))
        )


def _padded(wave: np.ndarray) -> np.ndarray:
    """``wave`` with silence up to the end of its last window."""
    padded = np.zeros((n_windows(len(wave)) - 1) * HOP_SAMPLES + WINDOW_SAMPLES, np.float32)
    padded[: len(wave)] = wave
    return padded


def clip_windows(wave: np.ndarray) -> np.ndarray:
    """``(n_windows, WINDOW_SAMPLES)`` windows of one clip, zero-padded at the end."""
    return np.lib.stride_tricks.sliding_window_view(_padded(wave), WINDOW_SAMPLES)[::HOP_SAMPLES]


def window_features(data: ClipAudio, *, cache: Path | None, yamnet: YamnetOnnx | None = None) -> WindowFeatures:
    """Features of every window of every clip in both :data:`VARIANTS` (cached by clip list)."""
    if data.sample_rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"features need {SAMPLE_RATE_HZ} Hz clips, got {data.sample_rate_hz}")
    if cache is not None:
        key = hashlib.sha1("\n".join(c.path for c in data.clips).encode()).hexdigest()[:16]
        cache = cache / f"window_features_{FEATURES_VERSION}_{key}.npz"
        if cache.is_file():
            with np.load(cache) as stored:
                return WindowFeatures(stored["clip_index"], stored["variant"], stored["head"], stored["gate"])
    yamnet = yamnet or YamnetOnnx.from_file()
    params = FrontendParams()
    per_window, per_hop = gate_frames()
    parts: dict[str, list[np.ndarray]] = {"clip_index": [], "variant": [], "head": [], "gate": []}
    for i in tqdm(range(len(data)), desc="window features"):
        for v, name in enumerate(VARIANTS):
            wave = data.waveform(i) if name == "full" else band_limit(data.waveform(i))
            padded = _padded(wave)
            windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_SAMPLES)[::HOP_SAMPLES]
            scores, embedding = yamnet.run(level_normalise(np.ascontiguousarray(windows)))
            frames = log_mel(padded[None, :], params)[0]
            stacked = np.stack([frames[:, k * per_hop : k * per_hop + per_window] for k in range(len(windows))])
            parts["clip_index"].append(np.full(len(windows), i, np.int32))
            parts["variant"].append(np.full(len(windows), v, np.int8))
            parts["head"].append(np.concatenate([embedding, scores], axis=1).astype(np.float16))
            parts["gate"].append(window_statistics(stacked))
    features = WindowFeatures(**{k: np.concatenate(v) for k, v in parts.items()})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **dataclasses.asdict(features))
    return features


__all__ = ["HEAD_FEATURES", "VARIANTS", "WindowFeatures", "band_limit", "clip_windows", "n_windows", "window_features"]
