from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.dsp.audio_io import read_audio, read_audio_native
from sed.dsp.resample import Resampler, resample, to_float32
from sed.errors import AudioFormatError


def _chirp(rate_hz: int, duration_s: float) -> np.ndarray:
    t = np.arange(int(rate_hz * duration_s)) / rate_hz
    return (0.5 * np.sin(2 * np.pi * (200 * t + 1500 * t**2))).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 1280, 4096])
def test_streaming_resampler_equals_offline(chunk: int) -> None:
    audio = np.stack([_chirp(44100, 0.5), _chirp(44100, 0.5)[::-1].copy()])
    offline = resample(audio, 44100, 16000)
    stream = Resampler(44100, 16000, n_streams=2)
    parts = [stream.push(audio[:, i : i + chunk]) for i in range(0, audio.shape[1], chunk)] + [stream.flush()]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), offline)


@pytest.mark.parametrize("in_rate_hz", [8000, 12000, 22050, 44100, 48000, 96000])
def test_resample_keeps_a_tone_at_its_frequency_and_length(in_rate_hz: int) -> None:
    t = np.arange(in_rate_hz) / in_rate_hz
    audio = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)[None, :]
    out = resample(audio, in_rate_hz, 16000)[0]
    assert abs(len(out) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(out[2000:14000] * np.hanning(12000)))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 1000.0) < 2.0
    assert np.sqrt(np.mean(out[2000:14000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_equal_rates_pass_blocks_through() -> None:
    block = np.ones((1, 100), np.float32)
    np.testing.assert_array_equal(Resampler(16000, 16000).push(block), block)


def test_to_float32_maps_each_pcm_format_to_unit_range() -> None:
    np.testing.assert_allclose(to_float32(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])
    np.testing.assert_allclose(to_float32(np.array([-32768, 16384], np.int16)), [-1.0, 0.5])
    np.testing.assert_allclose(to_float32(np.array([-(2**23), 2**22], np.int32), bits_per_sample=24), [-1.0, 0.5])
    np.testing.assert_allclose(to_float32(np.array([-(2**31), 2**30], np.int32)), [-1.0, 0.5])
    assert to_float32(np.array([0.25], np.float64)).dtype == np.float32


@pytest.mark.parametrize(
    "samples",
    [np.array([1, 2], np.int64), np.array([np.nan], np.float32), np.array([1 + 1j])],
)
def test_to_float32_rejects_unknown_dtypes_and_nan(samples: np.ndarray) -> None:
    with pytest.raises(AudioFormatError):
        to_float32(samples)


@pytest.mark.parametrize("rate_hz", [7999, 96001, 16000.5])
def test_rates_outside_8_to_96_khz_are_refused(rate_hz: float) -> None:
    with pytest.raises(AudioFormatError, match="Hz"):
        Resampler(rate_hz, 16000)  # type: ignore[arg-type]


def test_resampler_rejects_wrong_stream_count() -> None:
    with pytest.raises(AudioFormatError, match=r"\(2, n_samples\)"):
        Resampler(48000, 16000, n_streams=2).push(np.zeros((1, 10), np.float32))


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 1e-7)],
)
def test_read_audio_reads_every_sample_format(tmp_path: Path, subtype: str, tolerance: float) -> None:
    tone = _chirp(44100, 0.2)
    path = tmp_path / "x.wav"
    sf.write(path, np.stack([tone, tone], axis=1), 44100, subtype=subtype)
    audio, rate = read_audio_native(path)
    assert rate == 44100 and audio.dtype == np.float32 and audio.shape == tone.shape
    np.testing.assert_allclose(audio, tone, atol=tolerance)
    resampled = read_audio(path, sample_rate_hz=16000)
    np.testing.assert_allclose(resampled, resample(audio[None], 44100, 16000)[0])


def test_read_audio_names_the_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioFormatError, match=r"broken\.wav"):
        read_audio(bad, sample_rate_hz=16000)
    with pytest.raises(AudioFormatError, match=r"missing\.flac"):
        read_audio(tmp_path / "missing.flac", sample_rate_hz=16000)


def test_read_audio_refuses_rates_outside_the_range(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    sf.write(path, np.zeros(100, np.float32), 4000)
    with pytest.raises(AudioFormatError, match=r"slow\.wav: sample rate 4000 Hz"):
        read_audio_native(path)
