"""Arrival-time picking: when did the direct (first) sound of an event reach this microphone.

Two stages, both level-invariant (they see ratios of powers, never absolute levels):

1. **Candidates.** A jump detector on the analytic power ``|x + iH(x)|^2`` of the
   band-passed signal: the ratio of the power in a short window *after* ``t`` (1 ms) to
   the power in a longer window *before* ``t`` (30 ms, floored at the noise power). Every
   local maximum of that ratio above ``jump_db`` whose short-window power is at least
   ``min_snr_db`` above the noise floor is a candidate onset. A new shot inside the
   reverberation of an earlier one is still a jump, so it is still found.
2. **Refinement.** Maeda's AIC change-point picker on the band-passed waveform in a short
   window around the candidate: ``AIC(k) = k log var(x[:k]) + (N-k-1) log var(x[k:])``.
   Its minimum is the first sample of the arrival; a parabola through the minimum gives a
   fractional index. ``AIC`` is ``-2 log L`` of a two-segment Gaussian model, so the points
   where it rises by 1 above its minimum bound a 1-sigma interval; that, a quantisation
   term and a rise-time term make ``uncertainty_samples``. Impulses (gunshot, glass) give a
   sharp minimum; screams, with their gradual onset, a broad one and a larger uncertainty.

Echoes come later than the direct sound, so :func:`pick_arrival` returns the *earliest*
candidate in the search span that is loud enough relative to the strongest one
(``dynamic_range_db``), not the loudest.

Runs of exact zeros are treated as missing audio (recorders and clip retrievers pad with them):
they never count as noise, and the step from zeros to noise is not an onset.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
import scipy.signal

from sed.errors import AudioFormatError

#: Short (post-onset) and long (pre-onset) windows of the jump detector, s.
_STA_S = 0.001
_LTA_S = 0.030
#: Candidates closer than this to a stronger one are the same onset, s.
_MIN_SEPARATION_S = 0.010
#: Refined onsets closer than this are one onset found twice (keep the larger jump), s.
_SAME_ONSET_S = 0.002
#: Strength of a candidate: the loudest short-window power within this time after it, s.
_STRENGTH_S = 0.050
#: Dominance: loudest 1 ms this soon after the onset against the loudest this long before, s.
_DOMINANCE_AFTER_S = 0.010
_DOMINANCE_BEFORE_S = 0.300
#: AIC window: at least this much before the candidate and this much after it, s.
_AIC_PRE_S = 0.015
_AIC_POST_MIN_S = 0.0015
_AIC_POST_MAX_S = 0.010
#: Upper band edge as a fraction of the sample rate (4.8 kHz at 12 kHz).
_LOWPASS_FRACTION = 0.4
#: A run of this many exact zeros is missing audio, not a quiet stretch.
_MIN_GAP_SAMPLES = 16
#: Pre-roll needed for a noise estimate of its own, s; shorter pre-rolls use the whole excerpt.
_MIN_PREROLL_S = 0.1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pick:
    """One onset estimate.

    Attributes
    ----------
    sample_index : float
        Fractional index into the analysed array of the first sample of the direct sound.
    uncertainty_samples : float > 0
        1-sigma uncertainty of ``sample_index``, samples.
    snr_db : float
        Peak short-window (1 ms) power within 50 ms after the onset over the mean noise
        power, dB.
    jump_db : float
        Power after the onset over the power before it (the detector's statistic), dB.
    rise_samples : float >= 0
        Samples from the onset to the envelope peak that follows it (< 20 ms).
    dominance_db : float
        Loudest 1 ms within 10 ms after the onset over the loudest 1 ms in the 300 ms
        before it (or the noise floor), dB. A direct sound dominates what came before; an
        echo usually follows a louder sound (on Pittsburgh: >= 0 dB for 99 % of direct
        arrivals, for 34 % of other onsets).
    """

    sample_index: float
    uncertainty_samples: float
    snr_db: float
    jump_db: float
    rise_samples: float
    dominance_db: float = 0.0

    @property
    def directness(self) -> float:
        """:func:`directness` of this onset's dominance and jump."""
        return directness(self.dominance_db, self.jump_db)


def directness(dominance_db: float, jump_db: float) -> float:
    """Log-odds-like score that an onset is a direct sound, not an echo or clutter.

    ``clip((dominance_db - 3) / 4, -3, 3) + clip((jump_db - 14) / 6.7, -2, 2)``: a direct
    sound dominates the 300 ms before it (see :attr:`Pick.dominance_db`) and jumps out of
    the noise just before it; an echo follows a louder sound. Set by hand, in round
    numbers, from the two features' distributions on the Pittsburgh recordings (direct
    onsets: dominance median 14 dB, jump 23 dB; other onsets: -3 dB and 11 dB); not fitted.

    >>> round(directness(14.0, 23.0), 2), round(directness(-3.0, 11.0), 2)
    (4.09, -1.95)
    """
    dominance = min(max((dominance_db - 3.0) / 4.0, -3.0), 3.0)
    jump = min(max((jump_db - 14.0) / 6.7, -2.0), 2.0)
    return dominance + jump


def pick_arrival(
    audio: np.ndarray,
    *,
    sample_rate_hz: int,
    search_start_sample: int,
    search_stop_sample: int,
    min_snr_db: float = 12.0,
    jump_db: float = 9.0,
    dynamic_range_db: float = 30.0,
    highpass_hz: float = 200.0,
) -> Pick | None:
    """Arrival of the first onset of the event in ``[search_start_sample, search_stop_sample)``.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), floating]
        One stream's excerpt; ideally ~1 s of pre-roll before ``search_start_sample``, from
        which the noise floor is estimated.
    sample_rate_hz : int > 0
    search_start_sample, search_stop_sample : int, 0 <= start < stop <= n
        Where the event is (e.g. the detector's event span, with a margin). An onset is
        only reported inside this span.
    min_snr_db : float
        An onset needs this much power over the noise floor (see :class:`Pick`).
    jump_db : float
        An onset needs this power jump over the preceding 30 ms.
    dynamic_range_db : float >= 0
        The earliest candidate within this many dB of the span's strongest one wins.
    highpass_hz : float > 0
        Lower corner of the causal 4th-order Butterworth band-pass (upper corner 0.4 x the
        sample rate); removes wind and traffic rumble. The filter's delay is the same on
        every sensor, so it cancels in time differences.

    Returns
    -------
    Pick or None
        ``None`` when the span holds no onset that passes ``min_snr_db`` and ``jump_db``
        (silence, stationary noise, or only the tail of an event that began earlier).

    Raises
    ------
    AudioFormatError
        ``audio`` is not a finite 1-D floating array, or the span is outside it.
    """
    samples = _validated(audio, sample_rate_hz)
    if not 0 <= search_start_sample < search_stop_sample <= samples.size:
        raise AudioFormatError(
            f"search span [{search_start_sample}, {search_stop_sample}) is outside the audio "
            f"of {samples.size} samples; expected 0 <= start < stop <= {samples.size}"
        )
    preroll = samples[:search_start_sample]
    noise_region = (
        slice(0, search_start_sample)
        if np.count_nonzero(_present(preroll)) >= _MIN_PREROLL_S * sample_rate_hz
        else slice(0, samples.size)
    )
    picks = _find(
        samples,
        sample_rate_hz=sample_rate_hz,
        span=(search_start_sample, search_stop_sample),
        noise_region=noise_region,
        min_snr_db=min_snr_db,
        jump_db=jump_db,
        highpass_hz=highpass_hz,
    )
    if not picks:
        return None
    strongest_db = max(p.snr_db for p in picks)
    return next(p for p in picks if p.snr_db >= strongest_db - dynamic_range_db)


def find_onsets(
    audio: np.ndarray,
    *,
    sample_rate_hz: int,
    min_snr_db: float = 12.0,
    jump_db: float = 9.0,
    highpass_hz: float = 200.0,
) -> list[Pick]:
    """Every impulsive onset in a recording (direct sounds, echoes, unrelated pulses).

    The same two stages as :func:`pick_arrival`, with the noise floor taken from the whole
    recording. Use it where no detector says where the event is (e.g. to turn a
    multi-shot recording into pulses for association); association sorts out which
    onsets are direct arrivals.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), floating]
    sample_rate_hz : int > 0
    min_snr_db, jump_db, highpass_hz : float
        As in :func:`pick_arrival`.

    Returns
    -------
    list of Pick
        In time order.
    """
    samples = _validated(audio, sample_rate_hz)
    return _find(
        samples,
        sample_rate_hz=sample_rate_hz,
        span=(0, samples.size),
        noise_region=slice(0, samples.size),
        min_snr_db=min_snr_db,
        jump_db=jump_db,
        highpass_hz=highpass_hz,
    )


def _validated(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        kind = type(audio).__name__
        detail = f"{audio.dtype} array of shape {audio.shape}" if isinstance(audio, np.ndarray) else kind
        raise AudioFormatError(f"onset picker: audio is a {detail}; expected a 1-D floating array")
    if sample_rate_hz <= 0:
        raise AudioFormatError(f"onset picker: sample_rate_hz={sample_rate_hz}; expected > 0")
    if not np.all(np.isfinite(audio)):
        bad = np.count_nonzero(~np.isfinite(audio))
        raise AudioFormatError(f"onset picker: audio holds {bad} non-finite samples; expected all finite")
    return audio.astype(np.float64)


@lru_cache(maxsize=16)
def _band_sos(sample_rate_hz: int, highpass_hz: float) -> np.ndarray:
    """4th-order Butterworth band-pass from ``highpass_hz`` to 0.4 x the sample rate.

    The upper corner removes the pre-ringing that a linear-phase anti-alias filter puts
    in front of a sharp onset near Nyquist; it would otherwise pull loud onsets earlier
    than quiet ones.
    """
    upper_hz = _LOWPASS_FRACTION * sample_rate_hz
    lower_hz = min(highpass_hz, 0.5 * upper_hz)
    return scipy.signal.butter(4, [lower_hz, upper_hz], btype="bandpass", fs=sample_rate_hz, output="sos")


def _find(
    samples: np.ndarray,
    *,
    sample_rate_hz: int,
    span: tuple[int, int],
    noise_region: slice,
    min_snr_db: float,
    jump_db: float,
    highpass_hz: float,
) -> list[Pick]:
    present = _present(samples)
    filtered = scipy.signal.sosfilt(_band_sos(sample_rate_hz, highpass_hz), samples)
    filtered[~present] = 0.0
    power = np.abs(scipy.signal.hilbert(filtered, scipy.fft.next_fast_len(samples.size)))[: samples.size] ** 2
    noise_values = power[noise_region][present[noise_region]]
    if noise_values.size == 0:
        return []
    # Median of an exponential (Gaussian noise's analytic power) is ln 2 times its mean.
    noise_power = max(float(np.median(noise_values)) / math.log(2.0), np.finfo(np.float64).tiny)

    sta = _window_mean(power, present, round(_STA_S * sample_rate_hz), after=True)
    lta = _window_mean(power, present, round(_LTA_S * sample_rate_hz), after=False)
    ratio_db = 10.0 * np.log10(np.maximum(sta, 1e-300) / np.maximum(lta, noise_power))
    snr_db = 10.0 * np.log10(np.maximum(sta, 1e-300) / noise_power)

    start, stop = span
    separation = max(1, round(_MIN_SEPARATION_S * sample_rate_hz))
    peaks, _ = scipy.signal.find_peaks(ratio_db[start:stop], height=jump_db, distance=separation)
    strength_samples = round(_STRENGTH_S * sample_rate_hz)
    sta_samples = round(_STA_S * sample_rate_hz)
    dominance_after = round(_DOMINANCE_AFTER_S * sample_rate_hz)
    dominance_before = round(_DOMINANCE_BEFORE_S * sample_rate_hz)
    picks = []
    for peak in peaks + start:
        strength = float(snr_db[peak : peak + strength_samples].max())
        after = float(sta[peak : peak + dominance_after].max())
        before_window = sta[max(0, peak - dominance_before) : max(0, peak - sta_samples)]
        before = max(float(before_window.max()) if before_window.size else 0.0, noise_power)
        dominance_db = 10.0 * math.log10(max(after, 1e-300) / before)
        if strength < min_snr_db:
            continue
        pick = _refine(filtered, present, int(peak), sample_rate_hz=sample_rate_hz, noise_power=noise_power)
        picks.append(
            dataclasses.replace(pick, snr_db=strength, jump_db=float(ratio_db[peak]), dominance_db=dominance_db)
        )
    return _merge_repeats(picks, round(_SAME_ONSET_S * sample_rate_hz))


def _merge_repeats(picks: list[Pick], window_samples: int) -> list[Pick]:
    """Picks whose refined onsets lie within ``window_samples`` of each other are one onset
    (two peaks of the jump statistic refined back to the same first sample): keep the one
    with the larger jump, in time order."""
    merged: list[Pick] = []
    for pick in sorted(picks, key=lambda p: p.sample_index):
        if merged and pick.sample_index - merged[-1].sample_index <= window_samples:
            if pick.jump_db > merged[-1].jump_db:
                merged[-1] = pick
            continue
        merged.append(pick)
    return merged


def _present(samples: np.ndarray) -> np.ndarray:
    """False inside runs of at least ``_MIN_GAP_SAMPLES`` exact zeros (missing audio).

    Single zeros are ordinary samples of quiet 16-bit audio, not gaps.
    """
    zero = np.concatenate(([False], samples == 0.0, [False]))
    edges = np.flatnonzero(zero[1:] != zero[:-1])
    present = np.ones(samples.size, dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= _MIN_GAP_SAMPLES:
            present[start:stop] = False
    return present


def _window_mean(power: np.ndarray, present: np.ndarray, width: int, *, after: bool) -> np.ndarray:
    """Mean power over the ``width`` present samples starting at (after) or ending before t."""
    cumulative = np.concatenate(([0.0], np.cumsum(power)))
    counts = np.concatenate(([0], np.cumsum(present)))
    index = np.arange(power.size)
    if after:
        lo, hi = index, np.minimum(index + width, power.size)
    else:
        lo, hi = np.maximum(index - width, 0), index
    n = counts[hi] - counts[lo]
    return np.where(n > 0, (cumulative[hi] - cumulative[lo]) / np.maximum(n, 1), 0.0)


def _refine(
    filtered: np.ndarray, present: np.ndarray, candidate: int, *, sample_rate_hz: int, noise_power: float
) -> Pick:
    """AIC change point near ``candidate``; returns a Pick with snr/jump left at 0."""
    n = filtered.size
    rise_window = filtered[candidate : min(n, candidate + round(0.02 * sample_rate_hz))]
    rise = int(np.argmax(np.abs(rise_window))) if rise_window.size else 0
    post = int(np.clip(rise + 2, _AIC_POST_MIN_S * sample_rate_hz, _AIC_POST_MAX_S * sample_rate_hz))
    pre = max(round(_AIC_PRE_S * sample_rate_hz), 2 * rise)
    lo, hi = max(0, candidate - pre), min(n, candidate + post)
    # Missing audio (zeros) before the candidate is not noise: start after the last gap.
    gap = np.flatnonzero(~present[lo:candidate])
    if gap.size:
        lo += int(gap[-1]) + 1
    window = filtered[lo:hi]
    if window.size < 6:
        return Pick(
            sample_index=float(candidate),
            uncertainty_samples=float(max(rise, 1)),
            snr_db=0.0,
            jump_db=0.0,
            rise_samples=float(rise),
        )
    aic = _aic(window, floor=noise_power * 1e-6)
    best = int(np.argmin(aic))
    offset = 0.0
    if 0 < best < aic.size - 1:
        left, mid, right = aic[best - 1], aic[best], aic[best + 1]
        curvature = left - 2.0 * mid + right
        if curvature > 0:
            offset = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    # 1-sigma interval: where AIC (= -2 log L + const) is within 1 of its minimum.
    within = aic <= aic[best] + 1.0
    left_edge = best
    while left_edge > 0 and within[left_edge - 1]:
        left_edge -= 1
    right_edge = best
    while right_edge < aic.size - 1 and within[right_edge + 1]:
        right_edge += 1
    half_width = 0.5 * (right_edge - left_edge)
    onset = lo + 1 + best + offset  # aic[j] splits the window before sample j + 1
    rise_samples = max(0.0, candidate + rise - onset)
    uncertainty = math.sqrt(half_width**2 + 1.0 / 12.0 + (0.25 * rise_samples) ** 2)
    return Pick(
        sample_index=float(onset),
        uncertainty_samples=uncertainty,
        snr_db=0.0,
        jump_db=0.0,
        rise_samples=rise_samples,
    )


def _aic(window: np.ndarray, *, floor: float) -> np.ndarray:
    """``AIC[j]`` for the split of ``window`` before sample ``j + 1``, j = 0 … N-3."""
    n = window.size
    k = np.arange(1, n - 1, dtype=np.float64)  # samples in the first segment
    s1 = np.cumsum(window)[:-2]
    s2 = np.cumsum(window**2)[:-2]
    total1, total2 = window.sum(), (window**2).sum()
    var_before = np.maximum(s2 / k - (s1 / k) ** 2, floor)
    m = n - k
    var_after = np.maximum((total2 - s2) / m - ((total1 - s1) / m) ** 2, floor)
    return k * np.log(var_before) + (m - 1) * np.log(var_after)


__all__ = ["Pick", "directness", "find_onsets", "pick_arrival"]
