"""Sample-format conversion and streaming resampling to the model's rate.

Resampling uses libsoxr (the ``soxr`` package, "HQ" quality: a linear-phase FIR whose
delay libsoxr removes, so output sample ``k`` is the input signal at time
``k / out_rate_hz``). The offline :func:`resample` is the streaming :class:`Resampler`
fed in one block, and libsoxr's output does not depend on how the input is cut into
blocks, so offline equals streaming exactly (tested).
"""

from __future__ import annotations

import numpy as np
import soxr

from sed.errors import AudioFormatError

#: Lowest and highest input rates the pipeline accepts, Hz.
MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 96000
#: Full scale of signed integer PCM by container width, bits -> 2**(bits-1).
_INT_FULL_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def to_float32(samples: np.ndarray, *, bits_per_sample: int | None = None) -> np.ndarray:
    """Convert PCM samples of any common format to float32 in [-1, 1].

    Parameters
    ----------
    samples : np.ndarray [shape=(..., n_samples)]
        uint8 (offset binary, 8-bit WAV), int8, int16, int32 (24-bit audio sits in an
        int32 container, left-aligned as libsndfile and ALSA deliver it), float32 or float64.
    bits_per_sample : int, optional
        For int32 holding right-aligned 24-bit values (-2**23 … 2**23-1), pass 24.

    Returns
    -------
    np.ndarray [same shape, dtype=float32]

    Raises
    ------
    AudioFormatError
        For other dtypes, or float input holding NaN/inf.
    """
    dtype = samples.dtype
    if dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if dtype in _INT_FULL_SCALE:
        full_scale = _INT_FULL_SCALE[dtype]
        if bits_per_sample is not None:
            if dtype != np.int32 or bits_per_sample not in (24, 32):
                raise AudioFormatError(
                    f"bits_per_sample={bits_per_sample} with dtype {dtype}; expected 24 or 32 with int32"
                )
            full_scale = 2.0 ** (bits_per_sample - 1)
        return (samples.astype(np.float64) / full_scale).astype(np.float32)
    if dtype in (np.float32, np.float64):
        out = samples.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise AudioFormatError("samples hold NaN or infinite values")
        return out
    raise AudioFormatError(f"sample dtype {dtype}; expected uint8, int8, int16, int32, float32 or float64")


def check_rate(rate_hz: int, *, where: str = "sample rate") -> None:
    """Raise :class:`AudioFormatError` unless ``rate_hz`` is an int in 8 000 … 96 000 Hz."""
    if int(rate_hz) != rate_hz or not MIN_SAMPLE_RATE_HZ <= rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise AudioFormatError(
            f"{where} {rate_hz} Hz; expected an integer {MIN_SAMPLE_RATE_HZ}…{MAX_SAMPLE_RATE_HZ} Hz"
        )


class Resampler:
    """Streaming resampler for a batch of streams.

    Parameters
    ----------
    in_rate_hz, out_rate_hz : int, 8 000 … 96 000
    n_streams : int > 0

    Notes
    -----
    The filter's group delay is removed by libsoxr, so the outputs lag the inputs by a
    few milliseconds *in time of delivery* only: after pushes totalling ``n`` input samples
    the outputs so far hold slightly fewer than ``n * out_rate_hz / in_rate_hz`` samples,
    and :meth:`flush` delivers the rest. Equal rates pass blocks through unchanged.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, *, n_streams: int = 1) -> None:
        check_rate(in_rate_hz, where="input rate")
        check_rate(out_rate_hz, where="output rate")
        if n_streams <= 0:
            raise AudioFormatError(f"n_streams={n_streams}; expected > 0")
        self.in_rate_hz = int(in_rate_hz)
        self.out_rate_hz = int(out_rate_hz)
        self.n_streams = n_streams
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the filter state; the next push starts a new signal."""
        if self.in_rate_hz != self.out_rate_hz:
            self._stream = soxr.ResampleStream(
                self.in_rate_hz, self.out_rate_hz, self.n_streams, dtype="float32", quality="HQ"
            )

    def _check(self, block: np.ndarray) -> np.ndarray:
        if not isinstance(block, np.ndarray) or block.ndim != 2 or block.shape[0] != self.n_streams:
            shape = getattr(block, "shape", type(block).__name__)
            raise AudioFormatError(f"block shape {shape}; expected ({self.n_streams}, n_samples)")
        return to_float32(block)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Resample one block.

        Parameters
        ----------
        block : np.ndarray [shape=(n_streams, n_samples)], any dtype :func:`to_float32` takes

        Returns
        -------
        np.ndarray [shape=(n_streams, n_out), dtype=float32] at ``out_rate_hz``
        """
        audio = self._check(block)
        if self._stream is None:
            return np.ascontiguousarray(audio)
        out = self._stream.resample_chunk(np.ascontiguousarray(audio.T), last=False)
        return np.ascontiguousarray(out.T)

    def flush(self) -> np.ndarray:
        """Deliver the samples still inside the filter (end of signal); then :meth:`reset`."""
        if self._stream is None:
            return np.zeros((self.n_streams, 0), dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros((0, self.n_streams), dtype=np.float32), last=True)
        self.reset()
        return np.ascontiguousarray(out.T)


def resample(audio: np.ndarray, in_rate_hz: int, out_rate_hz: int) -> np.ndarray:
    """Resample whole signals (the streaming :class:`Resampler` fed in one block).

    Parameters
    ----------
    audio : np.ndarray [shape=(n_streams, n_samples)]
    in_rate_hz, out_rate_hz : int, 8 000 … 96 000

    Returns
    -------
    np.ndarray [shape=(n_streams, round(n_samples * out_rate_hz / in_rate_hz)), dtype=float32]
    """
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise AudioFormatError(f"audio shape {getattr(audio, 'shape', None)}; expected (n_streams, n_samples)")
    resampler = Resampler(in_rate_hz, out_rate_hz, n_streams=audio.shape[0])
    head = resampler.push(audio)
    return np.concatenate([head, resampler.flush()], axis=1)


__all__ = ["MAX_SAMPLE_RATE_HZ", "MIN_SAMPLE_RATE_HZ", "Resampler", "check_rate", "resample", "to_float32"]
