"""The wake gate: which windows the YAMNet stage has to look at.

A linear model on four statistics of each mel band over the window's log-mel frames (the
frames the front end computes anyway): mean, maximum, standard deviation and largest
frame-to-frame rise (dB); a window is verified when its logistic probability reaches the
threshold. Pure numpy; the parameters live in the detector file's metadata.

The shipped gate (:func:`sed.models.train.head.fit`) uses one direction of it: a loudness
floor on the mean over bands of each band's loudest frame, below the quietest event of the
training clips. A gate trained to tell event windows from the rest generalised badly to
sources it had not heard (measured: ``benchmarks/detect_v9.md``), so the gate only spares
YAMNet the windows in which nothing audible happens.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sed.errors import ModelError

#: Statistics per mel band, in the order of :func:`window_statistics`.
STATISTICS = ("mean_db", "max_db", "std_db", "max_rise_db")


def window_statistics(frames: np.ndarray) -> np.ndarray:
    """Per-band statistics of log-mel windows.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_windows, n_mels, n_frames), dtype=float32], dB
        ``n_frames >= 2``.

    Returns
    -------
    np.ndarray [shape=(n_windows, 4 * n_mels), dtype=float32]
        Mean, max, standard deviation and largest positive frame-to-frame difference of
        each band (band-major within each statistic: ``[mean_0..mean_63, max_0..]``).
    """
    if frames.ndim != 3 or frames.shape[2] < 2:
        raise ValueError(f"frames shape {frames.shape}; expected (n_windows, n_mels, n_frames >= 2)")
    rise = np.maximum(np.diff(frames, axis=2), 0.0).max(axis=2)
    stats = (frames.mean(axis=2), frames.max(axis=2), frames.std(axis=2), rise)
    return np.concatenate(stats, axis=1).astype(np.float32)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Gate:
    """A fitted gate.

    Attributes
    ----------
    mean, scale : np.ndarray [shape=(n_features,)]
        Standardisation of :func:`window_statistics` (``scale > 0``).
    weights : np.ndarray [shape=(n_features,)]
    bias : float
    threshold : float in [0, 1)
        Windows whose wake probability reaches it are verified.
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float

    def __post_init__(self) -> None:
        n = self.weights.shape
        if len(n) != 1 or self.mean.shape != n or self.scale.shape != n:
            raise ModelError(
                f"gate: mean {self.mean.shape}, scale {self.scale.shape}, weights {self.weights.shape}; "
                "expected three vectors of one length"
            )
        values = (self.mean, self.scale, self.weights, np.array([self.bias, self.threshold]))
        if not all(np.isfinite(v).all() for v in values) or (self.scale <= 0).any():
            raise ModelError("gate: parameters must be finite and every scale > 0")
        if not 0.0 <= self.threshold < 1.0:
            raise ModelError(f"gate: threshold {self.threshold}; expected 0 <= threshold < 1")

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    def probability(self, statistics: np.ndarray) -> np.ndarray:
        """Wake probability of each window, ``(n_windows,)`` float32, from :func:`window_statistics`."""
        z = ((statistics - self.mean) / self.scale) @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))).astype(np.float32)

    def wakes(self, statistics: np.ndarray) -> np.ndarray:
        """Boolean ``(n_windows,)``: windows to verify."""
        return self.probability(statistics) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 7) for v in self.weights],
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, where: str) -> Gate:
        """Parse metadata; errors name ``where`` and the field."""
        if not isinstance(doc, Mapping):
            raise ModelError(f"{where}: is {type(doc).__name__}; expected an object")
        missing = sorted({"mean", "scale", "weights", "bias", "threshold"} - set(doc))
        unknown = sorted(set(doc) - {"mean", "scale", "weights", "bias", "threshold"})
        if missing or unknown:
            raise ModelError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}")
        arrays = {}
        for name in ("mean", "scale", "weights"):
            value = doc[name]
            if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
                raise ModelError(f"{where}.{name}: expected a list of numbers")
            arrays[name] = np.asarray(value, np.float32)
        scalars = {}
        for name in ("bias", "threshold"):
            value = doc[name]
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ModelError(f"{where}.{name} = {value!r}; expected a finite number")
            scalars[name] = float(value)
        try:
            return cls(**arrays, **scalars)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from exc


__all__ = ["STATISTICS", "Gate", "window_statistics"]
