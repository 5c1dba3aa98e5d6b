"""The ONNX Runtime backend, wrapped once: load, check against metadata, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sed.errors import ModelError
from sed.models.metadata import METADATA_KEY, ModelMetadata


def open_session(path: Path, *, n_threads: int, config: dict[str, str] | None = None) -> Any:
    """One onnxruntime CPU session: ``n_threads`` intra-op threads, sequential, all graph
    optimisations, quiet; ``config`` adds session config entries.

    Raises
    ------
    ModelError
        onnxruntime is missing, ``n_threads < 1``, or the file is missing or not loadable
        (the message names the file).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelError("onnxruntime is not installed; pip install onnxruntime") from exc
    if n_threads < 1:
        raise ModelError(f"n_threads={n_threads}; expected >= 1")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from exc


class OnnxBackend:
    """One ONNX Runtime session for a sed model file.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    n_threads : int >= 1
        ``intra_op_num_threads``; ``inter_op_num_threads`` is 1, execution sequential, on
        the ``CPUExecutionProvider``.

    Raises
    ------
    ModelError
        The file is missing or not a loadable model, lacks the ``sed`` metadata, or its
        input/output shapes disagree with the metadata (the message names the file and field).
    """

    def __init__(self, path: Path, *, n_threads: int = 1) -> None:
        self._session = open_session(path, n_threads=n_threads)
        props = self._session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelError(f"{path}: metadata_props lacks key {METADATA_KEY!r}; not a sed model")
        self.metadata = ModelMetadata.from_json(props[METADATA_KEY], where=str(path))
        self.path = path
        self._output_names = [
            self.metadata.output_name,
            *(f"state_out_{i}" for i in range(len(self.metadata.state_shapes))),
        ]
        self._check_shapes()

    def _check_shapes(self) -> None:
        meta = self.metadata
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if meta.input_name not in inputs:
            raise ModelError(
                f"{self.path}: metadata field 'input_name' = {meta.input_name!r}; graph has {sorted(inputs)}"
            )
        if meta.output_name not in outputs:
            raise ModelError(
                f"{self.path}: metadata field 'output_name' = {meta.output_name!r}; graph has {sorted(outputs)}"
            )
        if meta.verifier is not None:
            self._check_head(inputs[meta.input_name].shape, outputs[meta.output_name].shape)
            return
        in_shape = inputs[meta.input_name].shape
        if len(in_shape) != 3 or in_shape[1] != meta.frontend.n_mels:
            raise ModelError(
                f"{self.path}: input {meta.input_name!r} shape {in_shape}; metadata field 'frontend.n_mels' "
                f"= {meta.frontend.n_mels} expects (batch, {meta.frontend.n_mels}, n_frames)"
            )
        out_shape = outputs[meta.output_name].shape
        if len(out_shape) != 3 or out_shape[1] != len(meta.labels):
            raise ModelError(
                f"{self.path}: output {meta.output_name!r} shape {out_shape}; metadata field 'labels' has "
                f"{len(meta.labels)} entries, expects (batch, {len(meta.labels)}, n_scores)"
            )
        for i, (channels, _) in enumerate(meta.state_shapes):
            name = f"state_in_{i}"
            if name not in inputs or inputs[name].shape[1] != channels or f"state_out_{i}" not in outputs:
                raise ModelError(
                    f"{self.path}: metadata field 'state_shapes[{i}]' = {list(meta.state_shapes[i])}; graph "
                    f"input {name!r} is {inputs[name].shape if name in inputs else 'missing'}"
                )
        probe, _ = self.run(
            np.zeros((1, meta.frontend.n_mels, meta.window_frames + meta.hop_frames), np.float32),
            self.initial_states(1),
        )
        if probe.shape != (1, len(meta.labels), 2):
            raise ModelError(
                f"{self.path}: {meta.window_frames + meta.hop_frames} frames gave scores of shape {probe.shape}; "
                f"metadata fields 'window_frames'={meta.window_frames}, 'hop_frames'={meta.hop_frames} expect "
                f"(1, {len(meta.labels)}, 2)"
            )

    def _check_head(self, in_shape: list, out_shape: list) -> None:
        """A two-stage model's head: ``(batch, n_features)`` in, ``(batch, n_labels)`` out."""
        meta = self.metadata
        if len(in_shape) != 2 or not isinstance(in_shape[1], int):
            raise ModelError(
                f"{self.path}: head input {meta.input_name!r} shape {in_shape}; expected (batch, n_features)"
            )
        self.n_head_features = int(in_shape[1])
        probe = self.score_windows(np.zeros((2, self.n_head_features), np.float32))
        if len(out_shape) != 2 or probe.shape != (2, len(meta.labels)):
            raise ModelError(
                f"{self.path}: head output {meta.output_name!r} shape {out_shape}; metadata field 'labels' has "
                f"{len(meta.labels)} entries, expects (batch, {len(meta.labels)})"
            )

    def score_windows(self, features: np.ndarray) -> np.ndarray:
        """A two-stage model's head: ``(n, n_features)`` float32 -> ``(n, n_labels)`` scores in [0, 1]."""
        return self._session.run([self.metadata.output_name], {self.metadata.input_name: features})[0]

    def initial_states(self, batch: int) -> list[np.ndarray]:
        """Empty states ``(batch, channels, 0)``: the next call must bring a whole first window."""
        return [np.zeros((batch, channels, 0), np.float32) for channels, _ in self.metadata.state_shapes]

    def run(self, features: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Score feature frames.

        Parameters
        ----------
        features : np.ndarray [shape=(batch, n_mels, n_frames), dtype=float32], log-mel dB
            Stateless models (``metadata.state_shapes == ()``) and the first call of streaming
            ones: ``n_frames = window_frames + (n_scores - 1) * hop_frames``; later calls of
            streaming models: ``n_frames = n_scores * hop_frames`` new frames.
        states : list of np.ndarray
            :meth:`initial_states`, then the states returned by the previous call
            (``[]`` for stateless models).

        Returns
        -------
        scores : np.ndarray [shape=(batch, n_labels, n_scores), dtype=float32] in [0, 1]
        states : list of np.ndarray, to pass to the next call
        """
        meta = self.metadata
        feeds = {meta.input_name: features, **{f"state_in_{i}": s for i, s in enumerate(states)}}
        outputs = self._session.run(self._output_names, feeds)
        return outputs[0], outputs[1:]


__all__ = ["OnnxBackend", "open_session"]
