"""LiteRT as the yardstick of the ONNX YAMNet: the reference runner, test windows, figures.

Used by ``python -m sed.models.train.yamnet_onnx`` (which prints the figures after writing
the model) and by ``tests/unit/models/test_yamnet.py``. Needs ``ai-edge-litert``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from sed.dsp.audio_io import read_audio
from sed.errors import ModelError
from sed.models.yamnet import EMBEDDING_SIZE, HOP_SAMPLES, N_CLASSES, SAMPLE_RATE_HZ, WINDOW_SAMPLES

#: LiteRT's CPU kernels: XNNPACK (its default, what ``sed bench``'s YAMNet baseline runs) or
#: the builtin reference kernels.
Kernels = Literal["xnnpack", "builtin"]
#: The coral test vector beside the TFLite files: 15,600 raw int16 samples.
CORAL_AUDIO = "yamnet_test_audio.bin"
_INT16_FULL_SCALE = 32768.0


class LiteRtYamnet:
    """YAMNet's TFLite file on LiteRT, with the embedding exposed as a second output.

    The flatbuffer is rewritten in memory to list the global-average-pool tensor (the input
    of the classifier) among the subgraph's outputs; nothing else changes.

    Parameters
    ----------
    path : Path
        ``yamnet_waveform.tflite``.
    kernels : {"xnnpack", "builtin"}
    n_threads : int >= 1

    Raises
    ------
    ModelError
        ``ai-edge-litert`` is missing, or the file is not the YAMNet waveform graph.
    """

    def __init__(self, path: Path, *, kernels: Kernels = "xnnpack", n_threads: int = 1) -> None:
        try:
            import flatbuffers
            from ai_edge_litert import schema_py_generated as schema
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:
            raise ModelError("the LiteRT reference needs ai-edge-litert: pip install 'sed[yamnet]'") from exc
        if not path.is_file():
            raise ModelError(f"{path}: TFLite file not found")
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
        subgraph = model.subgraphs[0]
        mean_code = schema.BuiltinOperator.MEAN
        pools = [
            int(op.outputs[0])
            for op in subgraph.operators
            if max(
                model.operatorCodes[op.opcodeIndex].builtinCode,
                model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
            )
            == mean_code
        ]
        if len(pools) != 1:
            raise ModelError(f"{path}: {len(pools)} MEAN ops; expected one (YAMNet's global average pool)")
        subgraph.outputs = np.asarray([*subgraph.outputs, pools[0]], np.int32)
        builder = flatbuffers.Builder(1 << 22)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        resolver = OpResolverType.AUTO if kernels == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._interpreter = Interpreter(
            model_content=bytes(builder.Output()), num_threads=n_threads, experimental_op_resolver_type=resolver
        )
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._scores, self._embedding = (o["index"] for o in self._interpreter.get_output_details())
        self.kernels = kernels

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(n, 521)`` and embeddings ``(n, 1024)`` of float32 windows ``(n, 15600)``, one by one."""
        scores = np.zeros((len(windows), N_CLASSES), np.float32)
        embedding = np.zeros((len(windows), EMBEDDING_SIZE), np.float32)
        for i, window in enumerate(windows):
            self._interpreter.set_tensor(self._input, np.ascontiguousarray(window, np.float32))
            self._interpreter.invoke()
            scores[i] = self._interpreter.get_tensor(self._scores)[0]
            embedding[i] = self._interpreter.get_tensor(self._embedding)[0]
        return scores, embedding


def coral_window(folder: Path) -> np.ndarray:
    """The coral test vector (speech) as one window, float32 ``(1, 15600)`` in [-1, 1]."""
    path = folder / CORAL_AUDIO
    if not path.is_file():
        raise ModelError(f"{path}: coral test vector not found")
    samples = np.fromfile(path, np.int16)
    if samples.size != WINDOW_SAMPLES:
        raise ModelError(f"{path}: {samples.size} int16 samples; expected {WINDOW_SAMPLES}")
    return (samples.astype(np.float32) / np.float32(_INT16_FULL_SCALE))[None, :]


def clip_windows(events_dir: Path, *, clips_per_source: int, windows_per_clip: int) -> np.ndarray:
    """YAMNet windows (hop 0.48 s) from clips of every source family of the shared events.

    Clips are taken evenly spread over each family's sorted list, so the choice is the same
    on every machine; clips shorter than a window are zero-padded at the end.

    Returns
    -------
    np.ndarray [shape=(n_windows, WINDOW_SAMPLES), dtype=float32]
    """
    from sed.models.train.data import read_manifest

    by_source: dict[str, list[str]] = {}
    for clip in read_manifest(events_dir / "manifest.csv"):
        by_source.setdefault(clip.source, []).append(clip.path)
    windows = []
    for source in sorted(by_source):
        paths = sorted(by_source[source])
        picks = np.unique(np.linspace(0, len(paths) - 1, clips_per_source).round().astype(int))
        for i in picks:
            audio = read_audio(events_dir / paths[i], sample_rate_hz=SAMPLE_RATE_HZ)
            if audio.size < WINDOW_SAMPLES:
                audio = np.pad(audio, (0, WINDOW_SAMPLES - audio.size))
            n_windows = min(windows_per_clip, 1 + (audio.size - WINDOW_SAMPLES) // HOP_SAMPLES)
            windows += [audio[k * HOP_SAMPLES : k * HOP_SAMPLES + WINDOW_SAMPLES] for k in range(n_windows)]
    return np.stack(windows).astype(np.float32)


def agreement(
    scores_a: np.ndarray, embedding_a: np.ndarray, scores_b: np.ndarray, embedding_b: np.ndarray
) -> dict[str, float]:
    """How closely two YAMNet runs agree on the same windows.

    Returns
    -------
    dict
        ``scores_max``, ``scores_p99``, ``scores_median``: absolute score differences over
        all windows and classes; ``embedding_max``, ``embedding_p99``: the same for the
        embedding; ``top1``: share of windows with the same best class; ``n_windows``.
    """
    d_scores = np.abs(scores_a - scores_b)
    d_embedding = np.abs(embedding_a - embedding_b)
    return {
        "n_windows": float(len(scores_a)),
        "scores_max": float(d_scores.max()),
        "scores_p99": float(np.percentile(d_scores, 99)),
        "scores_median": float(np.median(d_scores)),
        "embedding_max": float(d_embedding.max()),
        "embedding_p99": float(np.percentile(d_embedding, 99)),
        "top1": float(np.mean(scores_a.argmax(axis=1) == scores_b.argmax(axis=1))),
    }


def cpu_ms_per_window(run: Callable[[np.ndarray], object], windows: np.ndarray, *, batch: int, n_calls: int) -> float:
    """Median CPU time per window (ms, this process) of ``run`` on batches of ``batch`` windows.

    The batches cycle through ``windows``; two warm-up calls are not counted.
    """
    batches = [np.take(windows, range(i * batch, (i + 1) * batch), axis=0, mode="wrap") for i in range(n_calls)]
    for warm_up in batches[:2]:
        run(warm_up)
    cpu_s = []
    for windows_batch in batches:
        start = time.process_time()
        run(windows_batch)
        cpu_s.append(time.process_time() - start)
    return 1e3 * float(np.median(cpu_s)) / batch


__all__ = [
    "CORAL_AUDIO",
    "Kernels",
    "LiteRtYamnet",
    "agreement",
    "clip_windows",
    "coral_window",
    "cpu_ms_per_window",
]
