"""YAMNet on LiteRT as a streaming scorer: the baseline of ``sed bench detect --baseline yamnet``
and the teacher of training (:mod:`sed.models.yamnet` is the same network on onnxruntime,
inside the shipped detector).

Runs Google's YAMNet waveform TFLite model (``../shared/models/yamnet``, through
``ai-edge-litert`` with its default XNNPACK kernels, one thread) on 0.975 s windows
(15,600 samples at 16 kHz) every 0.48 s, as YAMNet itself frames audio, and maps its 521
AudioSet scores to our labels by the maximum over a group of classes. Several groups per
label are scored and the report keeps the best (an optimistic baseline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sed.errors import ModelError
from sed.paths import yamnet_dir

SAMPLE_RATE_HZ = 16000
WINDOW_SAMPLES = 15600
HOP_SAMPLES = 7680
#: AudioSet class groups scored per label (class indices of yamnet_class_map.csv).
CLASS_GROUPS: dict[str, dict[str, tuple[int, ...]]] = {
    "gunshot": {
        "Gunshot+Machine gun+Cap gun": (421, 422, 425),
        "Gunshot+Machine gun+Fusillade+Cap gun": (421, 422, 423, 425),
        "Gunshot": (421,),
    },
    "scream": {"Screaming": (11,)},
    "glass_break": {
        "Glass+Shatter+Breaking": (435, 437, 464),
        "Shatter+Breaking": (437, 464),
        "Shatter": (437,),
        "Glass+Shatter": (435, 437),
    },
}


class YamnetScorer:
    """Score a batch of 16 kHz streams with YAMNet, window by window.

    Parameters
    ----------
    n_streams : int > 0
    model_dir : Path, optional
        Folder holding ``yamnet_waveform.tflite`` (default: :func:`sed.paths.yamnet_dir`).
    n_threads : int
        Interpreter threads (1 for the cost comparison).

    Raises
    ------
    ModelError
        The model or ``ai-edge-litert`` is missing.
    """

    def __init__(self, *, n_streams: int = 1, model_dir: Path | None = None, n_threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError("the YAMNet baseline needs ai-edge-litert: pip install 'sed[yamnet]'") from exc
        folder = model_dir or yamnet_dir()
        path = folder / "yamnet_waveform.tflite" if folder is not None else None
        if path is None or not path.is_file():
            raise ModelError(f"{path or '../shared/models/yamnet'}: YAMNet waveform model not found")
        self._interpreter = Interpreter(model_path=str(path), num_threads=n_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.n_streams = n_streams
        self.group_names = {label: tuple(groups) for label, groups in CLASS_GROUPS.items()}
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros((self.n_streams, 0), np.float32)
        self.n_windows = 0

    def push(self, block: np.ndarray) -> dict[str, np.ndarray]:
        """Add 16 kHz audio ``(n_streams, n)``; return group scores of the windows it completes.

        Returns
        -------
        dict label -> np.ndarray [shape=(n_streams, n_groups, n_new_windows), dtype=float32]
            Window ``k`` covers samples ``[k * HOP_SAMPLES, k * HOP_SAMPLES + WINDOW_SAMPLES)``.
        """
        self._buffer = np.concatenate([self._buffer, block.astype(np.float32, copy=False)], axis=1)
        n_new = (
            0 if self._buffer.shape[1] < WINDOW_SAMPLES else 1 + (self._buffer.shape[1] - WINDOW_SAMPLES) // HOP_SAMPLES
        )
        raw = np.zeros((self.n_streams, n_new, 521), np.float32)
        for k in range(n_new):
            for s in range(self.n_streams):
                self._interpreter.set_tensor(
                    self._input, self._buffer[s, k * HOP_SAMPLES : k * HOP_SAMPLES + WINDOW_SAMPLES]
                )
                self._interpreter.invoke()
                raw[s, k] = self._interpreter.get_tensor(self._output)[0]
        self._buffer = self._buffer[:, n_new * HOP_SAMPLES :]
        self.n_windows += n_new
        return {
            label: np.stack([raw[:, :, list(idx)].max(axis=2) for idx in groups.values()], axis=1)
            for label, groups in CLASS_GROUPS.items()
        }


__all__ = ["CLASS_GROUPS", "HOP_SAMPLES", "SAMPLE_RATE_HZ", "WINDOW_SAMPLES", "YamnetScorer"]
