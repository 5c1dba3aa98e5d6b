"""A preallocated audio ring buffer addressed by absolute sample index."""

from __future__ import annotations

import numpy as np

from sed.dsp.frontend import check_audio
from sed.errors import AudioFormatError


class AudioRing:
    """Keeps the last ``capacity_samples`` samples of each stream.

    Samples are addressed by their absolute index since the stream started, so a
    detector event's sample span can be read back directly.

    Parameters
    ----------
    n_streams : int > 0
    capacity_samples : int > 0
    """

    def __init__(self, *, n_streams: int, capacity_samples: int) -> None:
        if n_streams <= 0 or capacity_samples <= 0:
            raise AudioFormatError(f"ring buffer: n_streams={n_streams}, capacity_samples={capacity_samples}")
        self._data = np.zeros((n_streams, capacity_samples), dtype=np.float32)
        self.capacity_samples = capacity_samples
        self.n_written = 0  # absolute index of the next sample to be written

    @property
    def oldest_sample(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.n_written - self.capacity_samples)

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` [shape=(n_streams, n), float32]; older samples are overwritten."""
        check_audio(block, n_streams=self._data.shape[0], where="ring buffer block")
        n = block.shape[1]
        if n >= self.capacity_samples:
            block = block[:, n - self.capacity_samples :]
            self.n_written += n - self.capacity_samples
            n = self.capacity_samples
        start = self.n_written % self.capacity_samples
        first = min(n, self.capacity_samples - start)
        self._data[:, start : start + first] = block[:, :first]
        self._data[:, : n - first] = block[:, first:]
        self.n_written += n

    def read(self, start_sample: int, stop_sample: int, *, stream: int | None = None) -> np.ndarray:
        """Copy of samples ``[start_sample, stop_sample)``: shape (n_streams, stop - start), or
        (stop - start,) of one ``stream`` (an event needs only its own: with 64 batched
        streams, copying all of them made each event 64 times the work).

        Raises
        ------
        AudioFormatError
            If the span is not (or no longer) held.
        """
        if not self.oldest_sample <= start_sample <= stop_sample <= self.n_written:
            raise AudioFormatError(
                f"ring buffer: span [{start_sample}, {stop_sample}) outside held "
                f"[{self.oldest_sample}, {self.n_written})"
            )
        if stream is not None and not 0 <= stream < self._data.shape[0]:
            raise AudioFormatError(f"ring buffer: stream {stream} of {self._data.shape[0]}")
        first = start_sample % self.capacity_samples
        rows = self._data if stream is None else self._data[stream]
        if first + (stop_sample - start_sample) <= self.capacity_samples:  # one piece, no wrap
            return rows[..., first : first + stop_sample - start_sample].copy()
        return np.concatenate(
            [rows[..., first:], rows[..., : stop_sample - start_sample - (self.capacity_samples - first)]], axis=-1
        )


__all__ = ["AudioRing"]
