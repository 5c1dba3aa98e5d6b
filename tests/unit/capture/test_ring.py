from __future__ import annotations

import numpy as np
import pytest

from sed.capture.ring import AudioRing
from sed.errors import AudioFormatError


def test_reads_back_any_held_span_across_the_wrap(rng: np.random.Generator) -> None:
    ring = AudioRing(n_streams=2, capacity_samples=1000)
    signal = rng.standard_normal((2, 3500)).astype(np.float32)
    for start in range(0, 3500, 333):
        ring.write(signal[:, start : start + 333])
    assert ring.n_written == 3500
    assert ring.oldest_sample == 2500
    np.testing.assert_array_equal(ring.read(2600, 3500), signal[:, 2600:3500])
    np.testing.assert_array_equal(ring.read(2990, 3010), signal[:, 2990:3010])


def test_block_longer_than_capacity_keeps_its_tail(rng: np.random.Generator) -> None:
    ring = AudioRing(n_streams=1, capacity_samples=100)
    signal = rng.standard_normal((1, 250)).astype(np.float32)
    ring.write(signal)
    np.testing.assert_array_equal(ring.read(150, 250), signal[:, 150:])


def test_span_no_longer_held_is_refused() -> None:
    ring = AudioRing(n_streams=1, capacity_samples=100)
    ring.write(np.zeros((1, 300), np.float32))
    with pytest.raises(AudioFormatError, match=r"span \[100, 250\) outside held \[200, 300\)"):
        ring.read(100, 250)
    with pytest.raises(AudioFormatError, match="outside held"):
        ring.read(250, 301)


def test_reading_one_stream_equals_that_row_of_all_streams_across_the_wrap() -> None:
    rng = np.random.default_rng(4)
    ring = AudioRing(n_streams=3, capacity_samples=100)
    for n in (37, 41, 59, 23):  # the held span wraps around the end of the buffer
        ring.write(rng.standard_normal((3, n)).astype(np.float32))
    spans = [
        (ring.oldest_sample, ring.n_written),
        (ring.n_written - 30, ring.n_written),
        (ring.oldest_sample, ring.oldest_sample + 5),
    ]
    for start, stop in spans:
        every = ring.read(start, stop)
        assert every.shape == (3, stop - start)
        for stream in range(3):
            np.testing.assert_array_equal(ring.read(start, stop, stream=stream), every[stream])
    with pytest.raises(AudioFormatError, match="stream 3 of 3"):
        ring.read(ring.oldest_sample, ring.n_written, stream=3)
