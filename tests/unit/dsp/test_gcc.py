"""GCC-PHAT delay between two noisy, differently filtered copies of one impulsive sound."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from sed.dsp.gcc import gcc_phat
from sed.errors import AudioFormatError


def delayed(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """``x`` delayed by a fractional number of samples (band-limited, via the spectrum)."""
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    frequencies = np.fft.rfftfreq(2 * n)
    return np.fft.irfft(spectrum * np.exp(-2j * np.pi * frequencies * delay_samples), 2 * n)[:n]


@pytest.mark.parametrize("delay_samples", [-7.3, 0.0, 2.5, 11.8])
def test_fractional_delay_is_recovered_despite_level_filter_and_noise(
    rng: np.random.Generator, delay_samples: float
) -> None:
    n = 600
    burst = np.zeros(n)
    burst[200:260] = rng.standard_normal(60) * np.exp(-np.arange(60) / 15.0)
    a = burst + 0.01 * rng.standard_normal(n)
    sos = scipy.signal.butter(2, 0.3, output="sos")  # the far sensor hears a duller, quieter copy
    b = 0.05 * scipy.signal.sosfiltfilt(sos, delayed(burst, delay_samples)) + 0.001 * rng.standard_normal(n)
    lag = gcc_phat(a, b, max_lag_samples=24)
    assert lag.lag_samples == pytest.approx(delay_samples, abs=0.3)
    assert 0.1 < lag.peak <= 1.0


def test_unrelated_noise_gives_a_low_peak(rng: np.random.Generator) -> None:
    lag = gcc_phat(rng.standard_normal(600), rng.standard_normal(600), max_lag_samples=24)
    assert lag.peak < 0.2


def test_bad_clips_raise() -> None:
    with pytest.raises(AudioFormatError):
        gcc_phat(np.zeros(100), np.zeros(90), max_lag_samples=5)
    with pytest.raises(AudioFormatError):
        gcc_phat(np.zeros(20), np.zeros(20), max_lag_samples=12)
