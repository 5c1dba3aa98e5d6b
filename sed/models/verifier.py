"""The two-stage scorer: a cheap gate on every window, YAMNet and a head on the few it wakes.

Used by :class:`sed.models.StreamingDetector` for a model file whose metadata has a
``verifier`` section. Windows are YAMNet's (15,600 samples every 7,680 at 16 kHz, counted
from the stream's first sample). For each completed window the gate
(:mod:`sed.models.gate`) reads the statistics of the log-mel frames inside it; only the
windows it wakes go through YAMNet (``yamnet.onnx``, one batched call per push) and the
head (this model file), which turns YAMNet's embedding and 521 AudioSet scores into one
score per class. Windows the gate lets pass score 0. Scores equal those of
:mod:`sed.models.train.features` on the same windows (offline = online, tested).
"""

from __future__ import annotations

import numpy as np

from sed.errors import ModelError
from sed.models.backend import OnnxBackend
from sed.models.gate import window_statistics
from sed.models.yamnet import YamnetOnnx

#: Each window is scaled so that its peak sits here before YAMNet sees it...
WINDOW_PEAK = 0.5
#: ...by at most this gain (dB): a distant scream is a quiet scream, but silence stays silence.
MAX_GAIN_DB = 40.0


def level_normalise(windows: np.ndarray) -> np.ndarray:
    """Scale each window ``(n, n_samples)`` to a peak of :data:`WINDOW_PEAK` (gain capped).

    YAMNet's log-mel input is level-dependent: the same scream 20 dB quieter (five times
    farther away) scored 0.02 instead of 0.52 as Screaming. Normalising each window makes
    the verifier judge the sound's shape, not its distance; the gate has already dropped
    the windows too quiet to hold an event.
    """
    peak = np.abs(windows).max(axis=1, keepdims=True)
    gain = np.minimum(WINDOW_PEAK / np.maximum(peak, 1e-12), 10 ** (MAX_GAIN_DB / 20))
    return (windows * gain).astype(np.float32)


class VerifiedScorer:
    """Window scores of a two-stage model for a batch of streams.

    Parameters
    ----------
    backend : OnnxBackend
        The head; ``backend.metadata.verifier`` names the backbone file beside it.
    n_streams : int > 0
    n_threads : int >= 1
        onnxruntime threads of the backbone.
    """

    def __init__(self, backend: OnnxBackend, *, n_streams: int, n_threads: int = 1) -> None:
        spec = backend.metadata.verifier
        if spec is None:
            raise ModelError(f"{backend.path}: not a two-stage model (no 'verifier' metadata)")
        self._backend = backend
        self._gate = spec.gate
        meta = backend.metadata
        self._window_samples = spec.window_samples
        self._hop_samples = spec.hop_samples
        self._frames_per_window = meta.window_frames
        self._frames_per_hop = meta.hop_frames
        if self._gate.n_features != 4 * meta.frontend.n_mels:
            raise ModelError(
                f"{backend.path}: metadata field 'verifier.gate' has {self._gate.n_features} weights; "
                f"expected {4 * meta.frontend.n_mels} (4 statistics x {meta.frontend.n_mels} mel bands)"
            )
        frame_hop = meta.frontend.hop_length_samples
        in_window = (spec.window_samples - meta.frontend.n_fft) // frame_hop + 1
        if meta.hop_frames * frame_hop != spec.hop_samples or meta.window_frames != in_window:
            raise ModelError(
                f"{backend.path}: metadata fields 'hop_frames' = {meta.hop_frames}, 'window_frames' = "
                f"{meta.window_frames} disagree with 'verifier.hop_samples' = {spec.hop_samples} and "
                f"'verifier.window_samples' = {spec.window_samples} (frames of {frame_hop} samples: expected "
                f"{spec.hop_samples / frame_hop:g} and {in_window})"
            )
        backbone = backend.path.with_name(spec.backbone)
        self._yamnet = YamnetOnnx.from_file(backbone, n_threads=n_threads)
        self.n_streams = n_streams
        self.reset()

    def reset(self) -> None:
        self._audio = np.zeros((self.n_streams, 0), np.float32)
        self._audio_base = 0  # absolute sample index of self._audio[:, 0]
        self._frames = np.zeros((self.n_streams, self._backend.metadata.frontend.n_mels, 0), np.float32)
        self._frame_base = 0
        self._next_window = 0
        #: Windows completed and windows the gate woke, summed over streams (the wake rate).
        self.n_windows = 0
        self.n_woken = 0

    @property
    def next_window_end_sample(self) -> int:
        """Samples a stream must have delivered before the next window can be scored."""
        return self._next_window * self._hop_samples + self._window_samples

    def push(self, block: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Add audio and its front-end frames; score the windows they complete.

        Parameters
        ----------
        block : np.ndarray [shape=(n_streams, n_samples), dtype=float32]
        frames : np.ndarray [shape=(n_streams, n_mels, n_new_frames), dtype=float32]
            What the streaming front end returned for ``block``.

        Returns
        -------
        np.ndarray [shape=(n_streams, n_labels, n_new_windows), dtype=float32]
            Window ``k`` covers samples ``[k * hop, k * hop + window)``.
        """
        self._audio = np.concatenate([self._audio, block.astype(np.float32, copy=False)], axis=1)
        self._frames = np.concatenate([self._frames, frames], axis=2)
        n_total = self._audio_base + self._audio.shape[1]
        last = (n_total - self._window_samples) // self._hop_samples  # last complete window
        first = self._next_window
        n_new = max(0, last - first + 1)
        n_labels = len(self._backend.metadata.labels)
        scores = np.zeros((self.n_streams, n_labels, n_new), np.float32)
        if n_new == 0:
            return scores
        ks = np.arange(first, first + n_new)
        starts = ks * self._frames_per_hop - self._frame_base
        view = np.stack([self._frames[:, :, s : s + self._frames_per_window] for s in starts], axis=1)
        n_mels = view.shape[2]
        stats = window_statistics(view.reshape(-1, n_mels, self._frames_per_window))
        woken = self._gate.wakes(stats).reshape(self.n_streams, n_new)
        self.n_windows += woken.size
        self.n_woken += int(woken.sum())
        streams, which = np.nonzero(woken)
        if len(streams):
            offsets = ks[which] * self._hop_samples - self._audio_base
            windows = np.stack(
                [self._audio[s, o : o + self._window_samples] for s, o in zip(streams, offsets, strict=True)]
            )
            yamnet_scores, embedding = self._yamnet.run(level_normalise(windows))
            head = self._backend.score_windows(np.concatenate([embedding, yamnet_scores], axis=1))
            scores[streams, :, which] = head
        self._next_window = first + n_new
        drop_samples = self._next_window * self._hop_samples - self._audio_base
        self._audio = self._audio[:, drop_samples:]
        self._audio_base += drop_samples
        drop_frames = self._next_window * self._frames_per_hop - self._frame_base
        self._frames = self._frames[:, :, drop_frames:]
        self._frame_base += drop_frames
        return scores


__all__ = ["MAX_GAIN_DB", "WINDOW_PEAK", "VerifiedScorer", "level_normalise"]
