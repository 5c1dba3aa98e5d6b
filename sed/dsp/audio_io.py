"""Reading audio files (WAV, FLAC, anything libsndfile reads) into float32.

Every reader of files (the bench, the training data loader, the file and scene sources)
goes through here, so they all fail the same way: an :class:`~sed.errors.AudioFormatError`
that names the file and says what was wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from sed.dsp.resample import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, resample
from sed.errors import AudioFormatError


def read_audio_native(path: str | Path, *, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a sound file into float32 samples in [-1, 1] at its own rate.

    Parameters
    ----------
    path : str or Path
        WAV, FLAC, OGG … (whatever libsndfile reads); 8/16/24/32-bit integer or float.
    mono : bool
        Average the channels into one (the sensor pipeline's input).

    Returns
    -------
    audio : np.ndarray [shape=(n_samples,) if mono else (n_channels, n_samples), dtype=float32]
    sample_rate_hz : int

    Raises
    ------
    AudioFormatError
        The file is missing or unreadable, empty, has a rate outside 8–96 kHz, or holds
        NaN/inf samples; the message names the file.
    """
    path = Path(path)
    try:
        data, sample_rate_hz = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioFormatError(f"{path}: unreadable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioFormatError(f"{path}: holds no samples; expected at least one")
    if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise AudioFormatError(
            f"{path}: sample rate {sample_rate_hz} Hz; expected {MIN_SAMPLE_RATE_HZ}…{MAX_SAMPLE_RATE_HZ} Hz"
        )
    if not np.isfinite(data).all():
        raise AudioFormatError(f"{path}: holds NaN or infinite samples")
    audio = data.T  # (n_channels, n_samples)
    if mono:
        audio = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    return np.ascontiguousarray(audio, dtype=np.float32), int(sample_rate_hz)


def read_audio(path: str | Path, *, sample_rate_hz: int) -> np.ndarray:
    """Read a sound file as mono float32 at ``sample_rate_hz`` (resampled when needed).

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]

    Raises
    ------
    AudioFormatError
        As :func:`read_audio_native`.
    """
    audio, native_rate_hz = read_audio_native(path, mono=True)
    return resample(audio[None, :], native_rate_hz, sample_rate_hz)[0]


__all__ = ["read_audio", "read_audio_native"]
