"""YAMNet on onnxruntime: AudioSet scores and embeddings of 0.975 s windows.

The shipped ``yamnet.onnx`` is Google's YAMNet (Apache-2.0, see ``YAMNET_LICENSE.md``)
converted from its waveform TFLite build by :mod:`sed.models.train.yamnet_onnx`, with
the 1024-d embedding (the pool before the classifier) as a second output. It runs on the
same runtime as the event detector, so a pole needs no second inference engine::

    from sed.models.yamnet import YamnetOnnx
    yamnet = YamnetOnnx.from_file()                 # the shipped model, one thread
    scores, embedding = yamnet.run(windows)         # float32 (n, 15600) -> (n, 521), (n, 1024)
    names = YamnetOnnx.class_names()                # 521 AudioSet display names

Activations are float32 (LiteRT rounds them to 8 bits, which makes its outputs jump with
the last bit of the input). Against LiteRT on 423 windows of real clips the scores differ
by a median 2e-7 and a 99th percentile 0.018, the same best class in 86 % of windows
(LiteRT's own two kernel sets: 0.009 and 94 %); the figures, and how they are measured,
are in ``YAMNET_LICENSE.md`` and ``tests/unit/models/test_yamnet.py``. CPU: 1.4 ms per
window at batch 1, 1.15 ms at batch 8 (one thread), LiteRT XNNPACK 1.5 ms.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from sed.errors import ModelError
from sed.models.backend import open_session

SAMPLE_RATE_HZ = 16000
#: One YAMNet window: 0.975 s at 16 kHz (96 frames of 25 ms every 10 ms).
WINDOW_SAMPLES = 15600
#: YAMNet's own window hop, 0.48 s.
HOP_SAMPLES = 7680
#: AudioSet classes scored.
N_CLASSES = 521
#: Width of the embedding (the global average pool of the last MobileNet layer).
EMBEDDING_SIZE = 1024
#: metadata_props key of the JSON provenance document in ``yamnet.onnx``.
METADATA_KEY = "sed_yamnet"
#: Format tag of that document.
METADATA_FORMAT = "sed-yamnet/1"
_CLASS_MAP = Path(__file__).with_name("yamnet_class_map.csv")


def default_yamnet_path() -> Path:
    """The ``yamnet.onnx`` shipped inside the package."""
    return Path(__file__).with_name("yamnet.onnx")


class YamnetOnnx:
    """One onnxruntime session of YAMNet.

    Use :meth:`from_file`. ``metadata`` holds the file's provenance (source TFLite md5,
    licence, conversion settings).
    """

    def __init__(self, session: Any, *, path: Path, metadata: dict[str, Any]) -> None:
        self._session = session
        self.path = path
        self.metadata = metadata

    @classmethod
    def from_file(cls, path: Path | None = None, *, n_threads: int = 1) -> YamnetOnnx:
        """Load a YAMNet ONNX file.

        Parameters
        ----------
        path : Path, optional
            Default: :func:`default_yamnet_path`.
        n_threads : int >= 1
            ``intra_op_num_threads`` (1 for the pipeline's cost budget); inter-op 1, sequential.

        Raises
        ------
        ModelError
            The file is missing or not loadable, lacks the ``sed_yamnet`` metadata, or its
            input/outputs are not ``waveform (n, 15600)`` -> ``scores (n, 521)``,
            ``embedding (n, 1024)`` (the message names the file and the field).
        """
        path = default_yamnet_path() if path is None else Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: YAMNet ONNX file not found")
        # The weights are stored int8 behind DequantizeLinear; with QDQ handling off, onnxruntime
        # folds them to float32 once at load instead of dequantising 3.7 M weights every call.
        session = open_session(path, n_threads=n_threads, config={"session.disable_quant_qdq": "1"})
        props = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelError(f"{path}: metadata_props lacks key {METADATA_KEY!r}; not a sed YAMNet model")
        try:
            metadata = json.loads(props[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: metadata_props[{METADATA_KEY!r}] is not JSON ({exc})") from exc
        if not isinstance(metadata, dict) or metadata.get("format") != METADATA_FORMAT:
            found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
            raise ModelError(f"{path}: metadata field 'format' = {found!r}; expected {METADATA_FORMAT!r}")
        _check_signature(session, path)
        return cls(session, path=path, metadata=metadata)

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and embeddings of a batch of windows.

        Parameters
        ----------
        windows : np.ndarray [shape=(n_windows, WINDOW_SAMPLES), dtype=float32]
            16 kHz audio in [-1, 1]; ``n_windows`` may be 0.

        Returns
        -------
        scores : np.ndarray [shape=(n_windows, N_CLASSES), dtype=float32] in [0, 1]
            Sigmoid scores of the AudioSet classes (names: :meth:`class_names`).
        embedding : np.ndarray [shape=(n_windows, EMBEDDING_SIZE), dtype=float32] >= 0

        Raises
        ------
        ModelError
            ``windows`` is not a 2-D float32 array of 15600-sample rows or holds non-finite values.
        """
        if not isinstance(windows, np.ndarray):
            raise ModelError(f"windows: {type(windows).__name__}; expected np.ndarray (n_windows, {WINDOW_SAMPLES})")
        if windows.dtype != np.float32:
            raise ModelError(f"windows: dtype {windows.dtype}; expected float32")
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ModelError(f"windows: shape {windows.shape}; expected (n_windows, {WINDOW_SAMPLES})")
        if windows.shape[0] == 0:
            return np.zeros((0, N_CLASSES), np.float32), np.zeros((0, EMBEDDING_SIZE), np.float32)
        if not np.isfinite(windows).all():
            bad = np.argwhere(~np.isfinite(windows))[0]
            raise ModelError(
                f"windows: non-finite value {windows[bad[0], bad[1]]} at window {bad[0]}, sample {bad[1]}; "
                "expected finite audio in [-1, 1]"
            )
        scores, embedding = self._session.run(["scores", "embedding"], {"waveform": np.ascontiguousarray(windows)})
        return scores, embedding

    @staticmethod
    def class_names() -> tuple[str, ...]:
        """The 521 AudioSet display names, in output order (from ``yamnet_class_map.csv``)."""
        return _class_names(_CLASS_MAP)


@functools.cache
def _class_names(path: Path) -> tuple[str, ...]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ModelError(f"{path}: class map unreadable ({exc})") from exc
    names = []
    for i, row in enumerate(rows):
        if row.get("index") != str(i) or not row.get("display_name"):
            raise ModelError(f"{path}: row {i + 2} = {row}; expected index {i} and a display_name")
        names.append(row["display_name"])
    if len(names) != N_CLASSES:
        raise ModelError(f"{path}: {len(names)} classes; expected {N_CLASSES}")
    return tuple(names)


def _check_signature(session: Any, path: Path) -> None:
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    expected = {"waveform": WINDOW_SAMPLES}
    for name, width in expected.items():
        if name not in inputs or len(inputs[name]) != 2 or inputs[name][1] != width:
            raise ModelError(f"{path}: input {name!r} is {inputs.get(name, 'missing')}; expected (n_windows, {width})")
    for name, width in {"scores": N_CLASSES, "embedding": EMBEDDING_SIZE}.items():
        if name not in outputs or len(outputs[name]) != 2 or outputs[name][1] != width:
            raise ModelError(
                f"{path}: output {name!r} is {outputs.get(name, 'missing')}; expected (n_windows, {width})"
            )


__all__ = [
    "EMBEDDING_SIZE",
    "HOP_SAMPLES",
    "METADATA_FORMAT",
    "METADATA_KEY",
    "N_CLASSES",
    "SAMPLE_RATE_HZ",
    "WINDOW_SAMPLES",
    "YamnetOnnx",
    "default_yamnet_path",
]
