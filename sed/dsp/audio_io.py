"""Reading audio files (WAV, FLAC, anything libsndfile reads) into float32.

Every reader of files (the bench, the training data loader, the file and scene sources)
goes through here, so they all fail the same way: an :class:`~sed.errors.AudioFormatError`
that names the file and says what was wrong.

:func:`stream_audio` reads a file of any length in blocks, in bounded memory (an hour of
96 kHz six-channel audio is 8 GB as float32); :func:`read_audio` is that stream joined, so
the two give the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from sed.dsp.resample import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Resampler, resample
from sed.errors import AudioFormatError

#: Frames read from a file at a time by :func:`stream_audio` (about 1 s at 48 kHz).
DEFAULT_BLOCK_FRAMES = 1 << 16
#: What libsndfile and the OS raise for a file they cannot open or decode.
_READ_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError)


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


def stream_audio(
    path: str | Path, *, sample_rate_hz: int, block_frames: int = DEFAULT_BLOCK_FRAMES, start_frame: int = 0
) -> Iterator[np.ndarray]:
    """Read a sound file block by block as mono float32 at ``sample_rate_hz``.

    Memory stays bounded by ``block_frames`` times the file's channel count whatever the
    file's length. Channels are averaged and each block resampled by the streaming
    :class:`~sed.dsp.resample.Resampler`, whose output does not depend on the block
    boundaries: the blocks joined equal :func:`read_audio` of the whole file.

    Parameters
    ----------
    path : str or Path
    sample_rate_hz : int, 8 000 … 96 000
    block_frames : int > 0
        Frames (samples per channel) read at a time from the file.
    start_frame : int >= 0
        Begin at this frame of the file (in its own rate). The resampler starts afresh there:
        its first output samples differ from a read of the whole file by the filter's warm-up.

    Yields
    ------
    np.ndarray [shape=(n,), dtype=float32]
        Consecutive pieces of the signal; lengths vary (the resampler's delay), some may be empty.

    Raises
    ------
    AudioFormatError
        As :func:`read_audio_native`; a problem found part-way (a truncated file, NaN
        samples) is raised after the blocks before it were yielded, so discard what you
        computed from them.
    """
    path = Path(path)
    if block_frames <= 0:
        raise AudioFormatError(f"block_frames={block_frames}; expected > 0")
    if start_frame < 0:
        raise AudioFormatError(f"start_frame={start_frame}; expected >= 0")
    try:
        handle = sf.SoundFile(path)
    except _READ_ERRORS as exc:
        raise AudioFormatError(f"{path}: unreadable audio file ({exc})") from exc
    with handle:
        native_rate_hz = int(handle.samplerate)
        if not MIN_SAMPLE_RATE_HZ <= native_rate_hz <= MAX_SAMPLE_RATE_HZ:
            raise AudioFormatError(
                f"{path}: sample rate {native_rate_hz} Hz; expected {MIN_SAMPLE_RATE_HZ}…{MAX_SAMPLE_RATE_HZ} Hz"
            )
        resampler = Resampler(native_rate_hz, sample_rate_hz)
        n_frames = 0
        if start_frame:
            if start_frame >= handle.frames:
                raise AudioFormatError(f"{path}: start_frame {start_frame} is past its {handle.frames} frames")
            try:
                handle.seek(start_frame)
            except _READ_ERRORS as exc:
                raise AudioFormatError(f"{path}: cannot seek to frame {start_frame} ({exc})") from exc
        while True:
            try:
                data = handle.read(frames=block_frames, dtype="float32", always_2d=True)
            except _READ_ERRORS as exc:
                raise AudioFormatError(f"{path}: unreadable after {n_frames} frames ({exc})") from exc
            if data.shape[0] == 0:
                break
            if not np.isfinite(data).all():
                raise AudioFormatError(f"{path}: holds NaN or infinite samples (from frame {n_frames} on)")
            n_frames += data.shape[0]
            # Same arithmetic as read_audio_native: the mean over channels of (n, channels) data.
            mono = data.T.mean(axis=0) if data.shape[1] > 1 else data[:, 0]
            yield resampler.push(np.ascontiguousarray(mono, dtype=np.float32)[None, :])[0]
        if n_frames == 0:
            raise AudioFormatError(f"{path}: holds no samples; expected at least one")
        yield resampler.flush()[0]


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


__all__ = ["DEFAULT_BLOCK_FRAMES", "read_audio", "read_audio_native", "stream_audio"]
