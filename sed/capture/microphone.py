"""Live capture from a sound card through PortAudio (``sounddevice``).

The PortAudio callback does as little as possible: it copies the wanted channels and
reads the monotonic and UTC clocks, and hands both to the consuming thread through a
bounded queue. The consumer feeds each callback to the
:class:`~sed.capture.clock.DisciplinedClock` (which ties the sample counter to UTC and
notices xruns and clock jumps), resamples to the model's rate with
:class:`~sed.dsp.resample.Resampler` and yields blocks of ``capture.block_ms``.

Start-up errors are :class:`~sed.errors.ConfigError` s that name the key and list what
exists (devices, channel counts, the device's default rate); a device that stops
delivering audio for ``capture.device_timeout_s`` is an :class:`~sed.errors.AudioFormatError`,
so the daemon exits non-zero and its supervisor (systemd) restarts it.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from sed.capture.clock import DisciplinedClock
from sed.capture.sources import Block
from sed.capture.timesync import kernel_clock_synced
from sed.config import CaptureSection, ClockSection
from sed.dsp.resample import Resampler
from sed.errors import AudioFormatError, ConfigError

log = logging.getLogger("sed.sensor.microphone")

#: Audio the callback may queue ahead of the consumer before input counts as lost, s.
QUEUE_S = 10.0
#: Callback period asked of PortAudio, s (regular callbacks make regular clock observations).
CALLBACK_S = 0.02


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise ConfigError(
            f"capture.source = 'microphone' needs PortAudio ({exc}); install it (Debian: apt install libportaudio2)"
        ) from None
    return sounddevice


def _input_devices(sd: Any) -> list[dict[str, Any]]:
    return [d for d in sd.query_devices() if d["max_input_channels"] > 0]


def _describe(devices: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['index']}: {d['name']!r} ({d['max_input_channels']} ch)" for d in devices) or "none"


def resolve_device(sd: Any, device: str | int | None) -> dict[str, Any]:
    """The PortAudio input device named by ``capture.device`` (index, name substring or default)."""
    inputs = _input_devices(sd)
    if device is None:
        index = sd.default.device[0]
        match = [d for d in inputs if d["index"] == index]
        if not match:
            raise ConfigError(f"capture.device: no default input device; input devices: {_describe(inputs)}")
        return match[0]
    if isinstance(device, int):
        match = [d for d in inputs if d["index"] == device]
        if not match:
            raise ConfigError(f"capture.device = {device}: no input device with that index; {_describe(inputs)}")
        return match[0]
    exact = [d for d in inputs if d["name"] == device]
    match = exact or [d for d in inputs if device.lower() in d["name"].lower()]
    if not match:
        raise ConfigError(f"capture.device = {device!r}: no input device matches; input devices: {_describe(inputs)}")
    if len(match) > 1:
        raise ConfigError(f"capture.device = {device!r}: matches several devices ({_describe(match)}); be more exact")
    return match[0]


def make_clock(clock: ClockSection, *, sample_rate_hz: int) -> DisciplinedClock:
    """The live clock configured by ``[clock]``."""
    return DisciplinedClock(
        nominal_rate_hz=sample_rate_hz,
        sync_check=kernel_clock_synced if clock.sync_check == "kernel" else None,
        input_latency_ns=round(clock.input_latency_ms * 1e6),
        fit_window_s=clock.fit_window_s,
        holdover_s=clock.holdover_s,
        jump_threshold_ns=round(clock.jump_threshold_ms * 1e6),
        jump_hold_s=clock.jump_hold_s,
        xrun_gap_ns=round(clock.xrun_gap_ms * 1e6),
    )


class MicrophoneSource:
    """One PortAudio input stream; each listed channel becomes one stream of the sensor.

    Parameters
    ----------
    capture : CaptureSection
        ``device``, ``sample_rate_hz`` (the device's), ``channels``, ``block_ms``, ``device_timeout_s``.
    sample_rate_hz : int
        Rate of the yielded blocks (the model's).
    clock : ClockSection, optional
    """

    def __init__(self, capture: CaptureSection, *, sample_rate_hz: int, clock: ClockSection | None = None) -> None:
        sd = _sounddevice()
        self._sd = sd
        self.device = resolve_device(sd, capture.device)
        self.channels = list(capture.channels or [0])
        n_available = int(self.device["max_input_channels"])
        if max(self.channels) >= n_available:
            raise ConfigError(
                f"capture.channels = {self.channels}; device {self.device['name']!r} has {n_available} input "
                f"channel(s) (0-based)"
            )
        self.device_rate_hz = capture.sample_rate_hz
        self._n_open = max(self.channels) + 1
        try:
            sd.check_input_settings(
                device=self.device["index"], channels=self._n_open, dtype="float32", samplerate=self.device_rate_hz
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise ConfigError(
                f"capture.sample_rate_hz = {self.device_rate_hz}: device {self.device['name']!r} refuses it ({exc}); "
                f"its default rate is {self.device['default_samplerate']:.0f} Hz"
            ) from None
        self.sample_rate_hz = sample_rate_hz
        self.n_streams = len(self.channels)
        self.clock = make_clock(clock or ClockSection(), sample_rate_hz=sample_rate_hz)
        self._ratio = sample_rate_hz / self.device_rate_hz
        self._block_samples = max(1, round(capture.block_ms / 1000 * sample_rate_hz))
        self._timeout_s = capture.device_timeout_s
        self._queue: queue.Queue[tuple[np.ndarray, int, int, bool]] = queue.Queue(
            maxsize=max(8, round(QUEUE_S / CALLBACK_S))
        )
        self._lost = False  # the queue was full: the next chunk follows lost input
        self._closed = False
        try:
            self._stream = sd.InputStream(
                device=self.device["index"],
                channels=self._n_open,
                samplerate=self.device_rate_hz,
                dtype="float32",
                blocksize=max(1, round(CALLBACK_S * self.device_rate_hz)),
                latency="low",
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise ConfigError(f"capture.device = {self.device['name']!r}: cannot open it ({exc})") from None

    def _callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        mono_ns, wall_ns = time.monotonic_ns(), time.time_ns()
        overflow = bool(status.input_overflow) or self._lost
        try:
            self._queue.put_nowait((indata[:, self.channels].T.copy(), mono_ns, wall_ns, overflow))
            self._lost = False
        except queue.Full:
            self._lost = True

    def blocks(self) -> Iterator[Block]:
        resampler = Resampler(self.device_rate_hz, self.sample_rate_hz, n_streams=self.n_streams)
        self._stream.start()
        log.info(
            "recording %s, channel(s) %s at %d Hz → %d Hz",
            self.device["name"],
            self.channels,
            self.device_rate_hz,
            self.sample_rate_hz,
        )
        device_position = 0  # device samples received
        position = 0  # model-rate samples yielded
        pending: list[np.ndarray] = []
        n_pending = 0
        xruns_seen = 0
        while not self._closed:
            try:
                chunk, mono_ns, wall_ns, overflow = self._queue.get(timeout=self._timeout_s)
            except queue.Empty:
                if self._closed:
                    return
                raise AudioFormatError(
                    f"capture.device {self.device['name']!r}: no audio for {self._timeout_s:g} s "
                    f"(capture.device_timeout_s); device gone or stalled"
                ) from None
            n = chunk.shape[1]
            self.clock.observe(
                first_sample=device_position * self._ratio,
                end_sample=(device_position + n) * self._ratio,
                mono_ns=mono_ns,
                wall_ns=wall_ns,
                overflow=overflow,
            )
            device_position += n
            out = resampler.push(chunk)
            if out.shape[1]:
                pending.append(out)
                n_pending += out.shape[1]
            if n_pending >= self._block_samples:
                samples = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
                pending, n_pending = [], 0
                xrun = self.clock.xruns != xruns_seen
                xruns_seen = self.clock.xruns
                if xrun:
                    log.warning("input lost (xrun %d: %s); clock re-anchored", xruns_seen, self.clock.last_xrun)
                yield Block(samples=samples, first_sample=position, xrun=xrun)
                position += samples.shape[1]

    @property
    def latency_s(self) -> float:
        """PortAudio's input latency of the open stream, s."""
        return float(self._stream.latency)

    def close(self) -> None:
        self._closed = True
        try:
            self._stream.abort()
            self._stream.close()
        except self._sd.PortAudioError as exc:  # already gone: nothing left to release
            log.info("closing %s: %s", self.device["name"], exc)


__all__ = ["MicrophoneSource", "make_clock", "resolve_device"]
