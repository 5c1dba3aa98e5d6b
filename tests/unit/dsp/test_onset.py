"""Onset picker on synthetic shots: decaying noise bursts made at 48 kHz, decimated to 12 kHz
(the decimator's linear-phase filter rings before the onset, as a real ADC's does), with
echoes and background noise, at several gains."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from sed.dsp.onset import Pick, directness, find_onsets, pick_arrival
from sed.errors import AudioFormatError

SAMPLE_RATE_HZ = 12_000
SOURCE_RATE_HZ = 48_000
NOISE_RMS = 1e-3


def synthetic_shot(
    rng: np.random.Generator,
    *,
    onset_s: float,
    gain: float,
    duration_s: float = 2.0,
    echoes: tuple[tuple[float, float], ...] = ((0.012, 0.7), (0.045, 1.5)),
    tau_s: float = 0.004,
    extra_shots_s: tuple[float, ...] = (),
) -> np.ndarray:
    """A shot (decaying noise burst) at ``onset_s`` plus delayed copies (echoes), float32, 12 kHz."""
    x = np.zeros(int(duration_s * SOURCE_RATE_HZ))
    burst_t = np.arange(int(0.08 * SOURCE_RATE_HZ)) / SOURCE_RATE_HZ
    for start_s in (onset_s, *extra_shots_s):
        burst = rng.standard_normal(burst_t.size) * np.exp(-burst_t / tau_s)
        for delay_s, amplitude in ((0.0, 1.0), *echoes):
            first = round((start_s + delay_s) * SOURCE_RATE_HZ)
            stop = min(x.size, first + burst.size)
            x[first:stop] += amplitude * burst[: stop - first]
    y = scipy.signal.resample_poly(x, SAMPLE_RATE_HZ, SOURCE_RATE_HZ) * gain
    return (y + NOISE_RMS * rng.standard_normal(y.size)).astype(np.float32)


def _pick(audio: np.ndarray, start_s: float = 1.0, stop_s: float = 1.99) -> Pick | None:
    return pick_arrival(
        audio,
        sample_rate_hz=SAMPLE_RATE_HZ,
        search_start_sample=round(start_s * SAMPLE_RATE_HZ),
        search_stop_sample=round(stop_s * SAMPLE_RATE_HZ),
    )


def test_pick_is_sub_millisecond_at_every_gain_despite_echoes_and_noise() -> None:
    rng = np.random.default_rng(1)
    medians = []
    for gain in (1.0, 0.1, 0.03, 0.01):  # peak SNR about 56, 36, 26, 17 dB
        errors_samples = []
        for _ in range(12):
            onset_s = 1.2 + rng.uniform(0.0, 0.01)
            pick = _pick(synthetic_shot(rng, onset_s=onset_s, gain=gain))
            assert pick is not None
            errors_samples.append(pick.sample_index - onset_s * SAMPLE_RATE_HZ)
        errors_ms = np.abs(errors_samples) / SAMPLE_RATE_HZ * 1e3
        assert np.median(errors_ms) < 0.25, f"gain {gain}: median |error| {np.median(errors_ms):.3f} ms"
        assert errors_ms.max() < 1.0, f"gain {gain}: worst |error| {errors_ms.max():.3f} ms"
        medians.append(np.median(errors_samples))
    # Level invariance: the same sound is picked at the same place whatever its level.
    assert np.ptp(medians) / SAMPLE_RATE_HZ * 1e3 < 0.25, f"median pick moves {medians} samples with gain"


def test_uncertainty_covers_the_error() -> None:
    rng = np.random.default_rng(2)
    z_scores = []
    for gain in (1.0, 0.1, 0.03):
        for _ in range(15):
            onset_s = 1.2 + rng.uniform(0.0, 0.01)
            pick = _pick(synthetic_shot(rng, onset_s=onset_s, gain=gain))
            assert pick is not None
            z_scores.append((pick.sample_index - onset_s * SAMPLE_RATE_HZ) / pick.uncertainty_samples)
    assert np.mean(np.abs(np.array(z_scores)) < 2.0) >= 0.9


def test_weak_direct_sound_wins_over_louder_echo() -> None:
    rng = np.random.default_rng(3)
    onset_s = 1.3
    audio = synthetic_shot(rng, onset_s=onset_s, gain=0.05, echoes=((0.03, 4.0), (0.08, 2.0)))
    pick = _pick(audio)
    assert pick is not None
    assert abs(pick.sample_index / SAMPLE_RATE_HZ - onset_s) < 0.5e-3


def test_first_of_several_shots_is_picked_and_find_onsets_sees_each_shot() -> None:
    rng = np.random.default_rng(4)
    audio = synthetic_shot(rng, onset_s=1.1, gain=0.2, echoes=(), extra_shots_s=(1.45, 1.8))
    pick = _pick(audio)
    assert pick is not None
    assert abs(pick.sample_index / SAMPLE_RATE_HZ - 1.1) < 0.5e-3
    onsets = find_onsets(audio, sample_rate_hz=SAMPLE_RATE_HZ)
    onset_times_s = [p.sample_index / SAMPLE_RATE_HZ for p in onsets]
    for shot_s in (1.1, 1.45, 1.8):
        assert min(abs(t - shot_s) for t in onset_times_s) < 0.5e-3
    assert onset_times_s == sorted(onset_times_s)


def test_an_onset_whose_jump_peaks_twice_is_reported_once() -> None:
    # A shot followed 12 ms later by an equally loud one (a second impulse in the same
    # sound): the jump statistic peaks at both, and the second peak's AIC window reaches
    # back to the first onset, so both refine to the same sample.
    for seed in range(10):
        rng = np.random.default_rng(seed)
        audio = synthetic_shot(rng, onset_s=1.2, gain=0.5, echoes=(), tau_s=0.002)
        audio += synthetic_shot(rng, onset_s=1.212, gain=0.5, echoes=())
        onsets = [p.sample_index / SAMPLE_RATE_HZ for p in find_onsets(audio, sample_rate_hz=SAMPLE_RATE_HZ)]
        assert min(abs(t - 1.2) for t in onsets) < 0.5e-3
        assert np.all(np.diff(onsets) > 0.002), f"seed {seed}: onsets {onsets}"


def test_directness_is_high_for_the_shot_and_low_for_its_echoes() -> None:
    assert directness(14.0, 23.0) > 3.0 > 0.0 > directness(-3.0, 11.0)
    assert -5.0 <= directness(-80.0, 0.0) < directness(0.0, 0.0) < directness(80.0, 80.0) <= 5.0
    rng = np.random.default_rng(9)
    audio = synthetic_shot(rng, onset_s=1.2, gain=0.2, echoes=((0.06, 0.5), (0.15, 0.4)), tau_s=0.002)
    onsets = find_onsets(audio, sample_rate_hz=SAMPLE_RATE_HZ, jump_db=7.0, min_snr_db=9.0)
    first = min(onsets, key=lambda p: abs(p.sample_index / SAMPLE_RATE_HZ - 1.2))
    later = [p for p in onsets if p.sample_index / SAMPLE_RATE_HZ > 1.25]
    assert later, "the echoes should be onsets too"
    assert all(first.directness > p.directness + 2.0 for p in later)


def test_stationary_noise_has_no_onset() -> None:
    rng = np.random.default_rng(5)
    audio = (NOISE_RMS * rng.standard_normal(2 * SAMPLE_RATE_HZ)).astype(np.float32)
    assert _pick(audio) is None
    assert _pick(np.zeros(2 * SAMPLE_RATE_HZ, dtype=np.float32)) is None


def test_edge_of_zero_padding_is_not_an_onset() -> None:
    rng = np.random.default_rng(6)
    audio = synthetic_shot(rng, onset_s=1.6, gain=0.1, echoes=())
    audio[: round(1.3 * SAMPLE_RATE_HZ)] = 0.0  # missing audio up to 1.3 s, then noise, then the shot
    pick = _pick(audio)
    assert pick is not None
    assert abs(pick.sample_index / SAMPLE_RATE_HZ - 1.6) < 0.5e-3


def test_gradual_onset_is_found_with_a_larger_uncertainty() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(2 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    onset_s = 1.25
    attack = np.clip((t - onset_s) / 0.05, 0.0, 1.0) * (t < onset_s + 0.5)  # 50 ms linear attack
    scream = 0.2 * attack * np.sin(2 * np.pi * (900 * t + 300 * np.sin(2 * np.pi * 5 * t)))
    audio = (scream + NOISE_RMS * rng.standard_normal(t.size)).astype(np.float32)
    pick = _pick(audio)
    assert pick is not None
    assert abs(pick.sample_index / SAMPLE_RATE_HZ - onset_s) < 0.01
    impulse = _pick(synthetic_shot(rng, onset_s=onset_s, gain=0.2))
    assert impulse is not None
    assert pick.uncertainty_samples > 2 * impulse.uncertainty_samples


def test_search_span_limits_where_an_onset_may_be() -> None:
    rng = np.random.default_rng(8)
    audio = synthetic_shot(rng, onset_s=1.2, gain=0.1, echoes=())
    assert _pick(audio, start_s=1.5, stop_s=1.99) is None


@pytest.mark.parametrize(
    ("audio", "start", "stop"),
    [
        (np.zeros((2, 100), dtype=np.float32), 0, 50),
        (np.zeros(100, dtype=np.int16), 0, 50),
        (np.array([0.0, np.nan, 0.0] * 40, dtype=np.float32), 0, 50),
        (np.zeros(100, dtype=np.float32), 50, 200),
        (np.zeros(100, dtype=np.float32), 60, 60),
    ],
)
def test_bad_input_raises_audio_format_error(audio: np.ndarray, start: int, stop: int) -> None:
    with pytest.raises(AudioFormatError):
        pick_arrival(audio, sample_rate_hz=SAMPLE_RATE_HZ, search_start_sample=start, search_stop_sample=stop)
