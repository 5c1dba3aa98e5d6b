"""Audio sources: where a sensor's samples come from.

Every source yields :class:`Block` s of float32 audio, shaped ``(n_streams, n_samples)``,
numbered by absolute sample index, together with the :class:`SampleClock` that maps
those indices to UTC. ``scene`` and ``file`` sources have exact clocks (their samples are
defined at known times); the microphone source lives in :mod:`sed.capture.microphone`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from sed.capture.clock import NS_PER_S, SampleClock
from sed.capture.scene import SceneRenderer
from sed.config import CaptureSection, SceneConfig, load_config
from sed.dsp.audio_io import read_audio


@dataclasses.dataclass(frozen=True, kw_only=True)
class Block:
    """Consecutive samples of every stream.

    Attributes
    ----------
    samples : np.ndarray [shape=(n_streams, n_samples), dtype=float32]
    first_sample : int
        Absolute index of ``samples[:, 0]`` since the source started.
    xrun : bool
        Samples were lost just before this block (the clock was re-anchored).
    """

    samples: np.ndarray
    first_sample: int
    xrun: bool = False


class AudioSource(Protocol):
    """What the sensor daemon needs from a source."""

    sample_rate_hz: int
    n_streams: int
    clock: SampleClock

    def blocks(self) -> Iterator[Block]:
        """Blocks until the source ends (files, scenes) or forever (microphones)."""
        ...

    def close(self) -> None: ...


def _pace(start_ns: int, end_sample: int, sample_rate_hz: int) -> None:
    """Sleep until ``end_sample`` would have been captured by a live stream started at ``start_ns``."""
    due_ns = start_ns + end_sample * NS_PER_S // sample_rate_hz
    delay_s = (due_ns - time.time_ns()) / NS_PER_S
    if delay_s > 0:
        time.sleep(delay_s)


class SceneSource:
    """One sensor of a simulated scene (:mod:`sed.capture.scene`).

    Parameters
    ----------
    capture : CaptureSection
        ``scene`` names the scene file; ``realtime`` paces blocks at the audio rate;
        ``start_utc_ns`` is the UTC time of the scene's first sample.
    sensor_id : str
    """

    def __init__(self, capture: CaptureSection, sensor_id: str) -> None:
        assert capture.scene is not None
        scene = load_config(capture.scene, SceneConfig).scene
        self._renderer = SceneRenderer(scene, sensor_id)
        self.sample_rate_hz = scene.sample_rate_hz
        self.n_streams = 1
        self._block_samples = max(1, round(capture.block_ms / 1000 * self.sample_rate_hz))
        self._realtime = capture.realtime
        start_ns = capture.start_utc_ns if capture.start_utc_ns is not None else time.time_ns()
        self.clock = SampleClock(sample_rate_hz=self.sample_rate_hz, anchor_ns=start_ns)

    def blocks(self) -> Iterator[Block]:
        position = 0
        while position < self._renderer.n_samples_total:
            n = min(self._block_samples, self._renderer.n_samples_total - position)
            if self._realtime:
                _pace(self.clock.anchor_ns, position + n, self.sample_rate_hz)
            yield Block(samples=self._renderer.render(n)[None, :], first_sample=position)
            position += n

    def close(self) -> None:
        pass


class FileSource:
    """A WAV/FLAC file replayed as a live stream (in real time or as fast as possible)."""

    def __init__(self, capture: CaptureSection, *, sample_rate_hz: int) -> None:
        assert capture.file is not None
        self._audio = read_audio(capture.file, sample_rate_hz=sample_rate_hz)[None, :]
        self.sample_rate_hz = sample_rate_hz
        self.n_streams = 1
        self._block_samples = max(1, round(capture.block_ms / 1000 * sample_rate_hz))
        self._realtime = capture.realtime
        start_ns = capture.start_utc_ns if capture.start_utc_ns is not None else time.time_ns()
        self.clock = SampleClock(sample_rate_hz=sample_rate_hz, anchor_ns=start_ns)

    def blocks(self) -> Iterator[Block]:
        n_total = self._audio.shape[1]
        for position in range(0, n_total, self._block_samples):
            stop = min(position + self._block_samples, n_total)
            if self._realtime:
                _pace(self.clock.anchor_ns, stop, self.sample_rate_hz)
            yield Block(samples=np.ascontiguousarray(self._audio[:, position:stop]), first_sample=position)

    def close(self) -> None:
        pass


__all__ = ["AudioSource", "Block", "FileSource", "SceneSource"]
