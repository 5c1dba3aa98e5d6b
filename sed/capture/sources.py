"""Audio sources: where a sensor's samples come from.

Every source yields :class:`Block` s of float32 audio, shaped ``(n_streams, n_samples)``,
at the model's rate, numbered by absolute sample index, together with the clock that maps
those indices to UTC. ``scene`` and ``file`` sources have exact clocks
(:class:`~sed.capture.clock.SampleClock`: their samples are defined at known times); the
microphone source (:mod:`sed.capture.microphone`) has a disciplined one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import soundfile

from sed.capture.clock import CaptureClock, SampleClock
from sed.capture.scene import SceneRenderer
from sed.config import CaptureSection, SceneConfig, load_config
from sed.dsp.resample import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Resampler
from sed.errors import AudioFormatError, ConfigError
from sed.units import NS_PER_S


@dataclasses.dataclass(frozen=True, kw_only=True)
class Block:
    """Consecutive samples of every stream.

    Attributes
    ----------
    samples : np.ndarray [shape=(n_streams, n_samples), dtype=float32]
    first_sample : int
        Absolute index of ``samples[:, 0]`` since the source started.
    xrun : bool
        Input was lost within or just before this block (the clock started a new segment).
    """

    samples: np.ndarray
    first_sample: int
    xrun: bool = False


class AudioSource(Protocol):
    """What the sensor daemon needs from a source."""

    sample_rate_hz: int
    n_streams: int
    clock: CaptureClock

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
    """Sensors of a simulated scene (:mod:`sed.capture.scene`), one stream each.

    Parameters
    ----------
    capture : CaptureSection
        ``scene`` names the scene file; ``realtime`` paces blocks at the audio rate;
        ``start_utc_ns`` is the UTC time of the scene's first sample.
    stream_ids : list of str
        Scene sensor ids rendered, one stream each.
    """

    def __init__(self, capture: CaptureSection, stream_ids: list[str]) -> None:
        assert capture.scene is not None
        scene = load_config(capture.scene, SceneConfig).scene
        self._renderers = [SceneRenderer(scene, stream_id) for stream_id in stream_ids]
        self.sample_rate_hz = scene.sample_rate_hz
        self.n_streams = len(stream_ids)
        self._block_samples = max(1, round(capture.block_ms / 1000 * self.sample_rate_hz))
        self._realtime = capture.realtime
        start_ns = capture.start_utc_ns if capture.start_utc_ns is not None else time.time_ns()
        self.clock = SampleClock(sample_rate_hz=self.sample_rate_hz, anchor_ns=start_ns)

    def blocks(self) -> Iterator[Block]:
        position, n_total = 0, self._renderers[0].n_samples_total
        while position < n_total:
            n = min(self._block_samples, n_total - position)
            if self._realtime:
                _pace(self.clock.anchor_ns, position + n, self.sample_rate_hz)
            samples = np.stack([renderer.render(n) for renderer in self._renderers])
            yield Block(samples=samples, first_sample=position)
            position += n

    def close(self) -> None:
        pass


class FileSource:
    """A WAV/FLAC file replayed as a live stream (in real time or as fast as possible).

    The file is read and resampled block by block, so an hour-long recording costs no more
    memory than a minute. ``capture.channels`` picks channels (one stream each); by default
    all channels are averaged into one stream.
    """

    def __init__(self, capture: CaptureSection, *, sample_rate_hz: int) -> None:
        assert capture.file is not None
        self.path = capture.file
        try:
            info = soundfile.info(str(self.path))
        except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioFormatError(f"{self.path}: unreadable audio file ({exc})") from None
        if not MIN_SAMPLE_RATE_HZ <= info.samplerate <= MAX_SAMPLE_RATE_HZ:
            raise AudioFormatError(
                f"{self.path}: sample rate {info.samplerate} Hz; expected {MIN_SAMPLE_RATE_HZ}…{MAX_SAMPLE_RATE_HZ} Hz"
            )
        self._channels = capture.channels
        if self._channels is not None and max(self._channels) >= info.channels:
            raise ConfigError(
                f"capture.channels = {self._channels}; {self.path} has {info.channels} channel(s) (0-based)"
            )
        self.n_streams = len(self._channels) if self._channels is not None else 1
        self.file_rate_hz = int(info.samplerate)
        self.sample_rate_hz = sample_rate_hz
        self._read_frames = max(1, round(capture.block_ms / 1000 * self.file_rate_hz))
        self._realtime = capture.realtime
        start_ns = capture.start_utc_ns if capture.start_utc_ns is not None else time.time_ns()
        self.clock = SampleClock(sample_rate_hz=sample_rate_hz, anchor_ns=start_ns)

    def _streams(self, frames: np.ndarray) -> np.ndarray:
        """(n_frames, n_channels) file data → (n_streams, n_frames) float32."""
        if self._channels is None:
            return np.ascontiguousarray(frames.mean(axis=1, dtype=np.float32)[None, :])
        return np.ascontiguousarray(frames[:, self._channels].T)

    def blocks(self) -> Iterator[Block]:
        resampler = Resampler(self.file_rate_hz, self.sample_rate_hz, n_streams=self.n_streams)
        position = 0
        with soundfile.SoundFile(str(self.path)) as audio_file:
            chunks = audio_file.blocks(blocksize=self._read_frames, dtype="float32", always_2d=True)
            for frames in _with_end(chunks):
                try:
                    samples = resampler.flush() if frames is None else resampler.push(self._streams(frames))
                except AudioFormatError as exc:
                    raise AudioFormatError(f"{self.path}: {exc}") from None
                if samples.shape[1] == 0:
                    continue
                if self._realtime:
                    _pace(self.clock.anchor_ns, position + samples.shape[1], self.sample_rate_hz)
                yield Block(samples=samples, first_sample=position)
                position += samples.shape[1]

    def close(self) -> None:
        pass


def _with_end(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray | None]:
    """The chunks, then ``None`` (end of file: flush the resampler)."""
    yield from chunks
    yield None


__all__ = ["AudioSource", "Block", "FileSource", "SceneSource"]
