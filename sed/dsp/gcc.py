"""Generalised cross-correlation with phase transform (GCC-PHAT) between two sensors' clips.

Used to refine the time difference between two picks of the same sound: both clips are cut
around their picks, the cross-spectrum is whitened (PHAT: only phase is kept, so the
sharpest common feature dominates and level differences do not matter), and the lag of the
correlation peak within a small search range is refined to a fraction of a sample by a
parabola through the peak.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.fft

from sed.errors import AudioFormatError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Lag:
    """Result of :func:`gcc_phat`.

    Attributes
    ----------
    lag_samples : float
        Delay of ``b`` relative to ``a``: ``b[n] ~ a[n - lag]``; positive when ``b`` is later.
    peak : float
        Height of the whitened correlation peak, 0 … 1 (1: identical up to a delay).
    """

    lag_samples: float
    peak: float


def gcc_phat(a: np.ndarray, b: np.ndarray, *, max_lag_samples: int, weight_floor: float = 0.05) -> Lag:
    """Delay of ``b`` relative to ``a`` by GCC-PHAT, searched within ``±max_lag_samples``.

    Parameters
    ----------
    a, b : np.ndarray [shape=(n,), floating]
        Clips of equal length, already aligned on their picks (so the true lag is small).
    max_lag_samples : int >= 0
        Search range.
    weight_floor : float > 0
        Cross-spectrum magnitudes below this fraction of their maximum are not whitened up
        (keeps empty bands from adding noise).

    Returns
    -------
    Lag

    Raises
    ------
    AudioFormatError
        The clips are not 1-D floating arrays of one length, or are too short for the range.
    """
    for name, clip in (("a", a), ("b", b)):
        if not isinstance(clip, np.ndarray) or clip.ndim != 1 or not np.issubdtype(clip.dtype, np.floating):
            raise AudioFormatError(f"gcc_phat: {name} must be a 1-D floating array")
    if a.size != b.size or a.size <= 2 * max_lag_samples + 2 or max_lag_samples < 0:
        raise AudioFormatError(
            f"gcc_phat: clips of {a.size} and {b.size} samples with max_lag_samples={max_lag_samples}; "
            "expected equal lengths above 2 * max_lag_samples + 2"
        )
    n = scipy.fft.next_fast_len(2 * a.size)
    window = np.hanning(a.size)
    cross = scipy.fft.rfft(b * window, n) * np.conj(scipy.fft.rfft(a * window, n))
    magnitude = np.abs(cross)
    if not np.any(magnitude > 0):
        return Lag(lag_samples=0.0, peak=0.0)
    whitened = cross / np.maximum(magnitude, weight_floor * magnitude.max())
    correlation = scipy.fft.irfft(whitened, n)
    lags = np.arange(-max_lag_samples, max_lag_samples + 1)
    values = correlation[lags % n]
    best = int(np.argmax(values))
    offset = 0.0
    if 0 < best < len(values) - 1:
        left, mid, right = values[best - 1], values[best], values[best + 1]
        curvature = left - 2.0 * mid + right
        if curvature < 0:
            offset = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    # The value a perfectly aligned pair would reach: every whitened bin adding in phase.
    aligned = float(scipy.fft.irfft(np.abs(whitened), n)[0])
    return Lag(lag_samples=float(lags[best] + offset), peak=float(values[best] / aligned) if aligned > 0 else 0.0)


__all__ = ["Lag", "gcc_phat"]
