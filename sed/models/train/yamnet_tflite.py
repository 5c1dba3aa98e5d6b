"""Read YAMNet's waveform TFLite file: its front-end constants and its int8 weights.

:func:`read_constants` walks the graph op by op (44 ops: framing, window, |RFFT|, mel
matrix, log, 14 convolutions and 13 depthwise convolutions with ReLU, mean, classifier,
sigmoid), checks each is what YAMNet has there and returns every constant in ONNX layout.
A file that differs raises :class:`~sed.errors.ModelError` naming the op and what was
expected. Needs ``ai-edge-litert`` (its flatbuffer schema).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sed.errors import ModelError
from sed.models.yamnet import EMBEDDING_SIZE, N_CLASSES, WINDOW_SAMPLES

# TFLite's Padding and ActivationFunctionType enums (schema.fbs).
_PADDING_SAME = 0
_ACTIVATION_RELU = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvLayer:
    """One convolution of the MobileNet body, ONNX layout.

    Attributes
    ----------
    weight : np.ndarray [shape=(out, in/groups, kh, kw)], float32 or int8
    scales : np.ndarray [shape=(out,), dtype=float32] or None
        Per-output-channel scales of an int8 ``weight``; None when it is float.
    bias : np.ndarray [shape=(out,), dtype=float32]
    stride : int
    pads : tuple of 4 int
        ONNX ``pads`` (top, left, bottom, right) equal to TF 'SAME' on the fixed patch.
    groups : int
        1, or the channel count for a depthwise convolution.
    """

    weight: np.ndarray
    scales: np.ndarray | None
    bias: np.ndarray
    stride: int
    pads: tuple[int, int, int, int]
    groups: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class YamnetConstants:
    """Everything the ONNX graph needs, read from the TFLite file.

    Attributes
    ----------
    frame_samples : np.ndarray [shape=(n_frames, frame_length), dtype=int64]
        Sample index of every frame sample (frames of 400 every 160 samples).
    window : np.ndarray [shape=(frame_length,), dtype=float32]
    fft_length : int
    mel_int8 : np.ndarray [shape=(n_bins, n_mels), dtype=int8]
    mel_scale : float
    log_offset : np.ndarray [shape=(n_mels,), dtype=float32]
        Added before the log (0.001 in YAMNet).
    layers : tuple of ConvLayer
    dense_int8 : np.ndarray [shape=(EMBEDDING_SIZE, N_CLASSES), dtype=int8]
    dense_scale : float
    dense_bias : np.ndarray [shape=(N_CLASSES,), dtype=float32]
    source_md5 : str
    """

    frame_samples: np.ndarray
    window: np.ndarray
    fft_length: int
    mel_int8: np.ndarray
    mel_scale: float
    log_offset: np.ndarray
    layers: tuple[ConvLayer, ...]
    dense_int8: np.ndarray
    dense_scale: float
    dense_bias: np.ndarray
    source_md5: str


class _Graph:
    """The TFLite file's single subgraph: ops in order, constants readable by tensor index."""

    def __init__(self, path: Path) -> None:
        try:
            from ai_edge_litert import schema_py_generated as schema
        except ImportError as exc:
            raise ModelError("reading TFLite needs ai-edge-litert: pip install 'sed[yamnet]'") from exc
        if not path.is_file():
            raise ModelError(f"{path}: TFLite file not found")
        raw = path.read_bytes()
        try:
            model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
        except Exception as exc:  # flatbuffers raises assorted errors on garbage
            raise ModelError(f"{path}: not a TFLite flatbuffer ({exc})") from exc
        if not model.subgraphs or len(model.subgraphs) != 1:
            raise ModelError(f"{path}: {len(model.subgraphs or [])} subgraphs; expected 1")
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.path = path
        self.md5 = hashlib.md5(raw).hexdigest()
        self._subgraph = model.subgraphs[0]
        self._buffers = model.buffers
        self._types = types
        self.ops: list[tuple[str, list[int], list[int], Any]] = []
        for op in self._subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            self.ops.append((kind, [int(i) for i in op.inputs], [int(i) for i in op.outputs], op.builtinOptions))

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self._subgraph.tensors[index].shape)

    def const(self, index: int) -> np.ndarray:
        """The raw constant of tensor ``index`` (int8 weights stay int8)."""
        tensor = self._subgraph.tensors[index]
        data = self._buffers[tensor.buffer].data
        if data is None:
            raise ModelError(f"{self.path}: tensor {index} ({tensor.name!r}) holds no constant; expected one")
        dtypes = {"FLOAT32": np.float32, "INT32": np.int32, "INT8": np.int8}
        if self._types.get(tensor.type) not in dtypes:
            raise ModelError(
                f"{self.path}: tensor {index} is {self._types.get(tensor.type)}; expected {sorted(dtypes)}"
            )
        dtype = dtypes[self._types[tensor.type]]
        return np.frombuffer(bytes(data), dtype=dtype).reshape(self.shape(index)).copy()

    def scales(self, index: int) -> tuple[np.ndarray, int]:
        """Scales and quantised axis of an int8 tensor (zero points must be 0: symmetric)."""
        q = self._subgraph.tensors[index].quantization
        if q is None or q.scale is None or (q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0)):
            raise ModelError(f"{self.path}: tensor {index}: int8 weights without symmetric scales")
        return np.asarray(q.scale, np.float32), int(q.quantizedDimension)

    def expect(self, position: int, kind: str) -> tuple[list[int], list[int], Any]:
        if position >= len(self.ops) or self.ops[position][0] != kind:
            found = self.ops[position][0] if position < len(self.ops) else "end of graph"
            raise ModelError(f"{self.path}: op {position} is {found}; expected {kind} (YAMNet waveform graph)")
        return self.ops[position][1:]


def read_constants(path: Path) -> YamnetConstants:
    """Read YAMNet's front end and weights from its waveform TFLite file.

    Raises
    ------
    ModelError
        The file is missing, not TFLite, or not the YAMNet waveform graph (the message names
        the op index and the op expected there).
    """
    g = _Graph(path)
    try:
        return _read(g)
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # an op with other inputs than YAMNet's
        raise ModelError(f"{path}: not the YAMNet waveform graph ({type(exc).__name__}: {exc})") from exc


def _read(g: _Graph) -> YamnetConstants:
    path = g.path
    # Front end: waveform -> (rows, row_len) -> gather rows -> frames -> * window -> pad -> |RFFT|.
    (_, rows_shape), _, _ = g.expect(0, "RESHAPE")
    (_, row_index), _, _ = g.expect(1, "GATHER")
    n_rows, row_length = (int(v) for v in g.const(rows_shape))
    if n_rows * row_length != WINDOW_SAMPLES:
        raise ModelError(f"{path}: op 0 reshapes to {n_rows}x{row_length}; expected {WINDOW_SAMPLES} samples")
    rows = g.const(row_index).astype(np.int64)
    frame_samples = (rows[:, :, None] * row_length + np.arange(row_length)).reshape(rows.shape[0], -1)
    g.expect(2, "RESHAPE")
    (_, window_index), _, _ = g.expect(3, "MUL")
    window = g.const(window_index).astype(np.float32)
    (_, pad_index), _, _ = g.expect(4, "PAD")
    pads = g.const(pad_index)
    fft_length = frame_samples.shape[1] + int(pads[1, 1])
    if pads[0].any() or pads[1, 0] or window.shape != (frame_samples.shape[1],):
        raise ModelError(f"{path}: ops 3-4 window {window.shape} / pads {pads.tolist()}; expected right-padding")
    g.expect(5, "RESHAPE")
    (_, fft_index), _, _ = g.expect(6, "RFFT2D")
    if int(g.const(fft_index)[-1]) != fft_length:
        raise ModelError(f"{path}: op 6 FFT length {g.const(fft_index).tolist()}; expected {fft_length}")
    g.expect(7, "RESHAPE")
    g.expect(8, "COMPLEX_ABS")
    (_, mel_index, offset_index), _, _ = g.expect(9, "FULLY_CONNECTED")
    mel_scales, _ = g.scales(mel_index)
    g.expect(10, "LOG")
    # Ops 11-13 cut the log-mel frames into patches; with 96 frames there is one, in order.
    g.expect(11, "RESHAPE")
    (_, patch_index), _, _ = g.expect(12, "GATHER")
    g.expect(13, "RESHAPE")
    pieces = g.const(patch_index).ravel().tolist()
    if pieces != list(range(g.shape(g.ops[11][2][0])[0])):
        raise ModelError(f"{path}: op 12 gathers pieces {pieces}; expected all, in order (one patch)")
    patch_shape = (1, frame_samples.shape[0], g.shape(mel_index)[0], 1)
    if g.shape(g.ops[13][2][0]) != patch_shape:
        raise ModelError(f"{path}: op 13 gives {g.shape(g.ops[13][2][0])}; expected one {patch_shape} patch")
    layers, position = _read_body(g, first=14)
    (_, axes_index), _, _ = g.expect(position, "MEAN")
    if g.const(axes_index).tolist() != [1, 2]:
        raise ModelError(f"{path}: op {position} averages axes {g.const(axes_index).tolist()}; expected [1, 2]")
    (_, dense_index, dense_bias_index), _, _ = g.expect(position + 1, "FULLY_CONNECTED")
    g.expect(position + 2, "LOGISTIC")
    dense_scales, _ = g.scales(dense_index)
    if mel_scales.size != 1 or dense_scales.size != 1:
        raise ModelError(f"{path}: mel/classifier matrices have per-row scales; expected one scale each")
    dense = g.const(dense_index)
    if dense.shape != (N_CLASSES, EMBEDDING_SIZE):
        raise ModelError(f"{path}: classifier weights {dense.shape}; expected ({N_CLASSES}, {EMBEDDING_SIZE})")
    return YamnetConstants(
        frame_samples=frame_samples,
        window=window,
        fft_length=fft_length,
        mel_int8=np.ascontiguousarray(g.const(mel_index).T),
        mel_scale=float(mel_scales[0]),
        log_offset=g.const(offset_index).astype(np.float32),
        layers=tuple(layers),
        dense_int8=np.ascontiguousarray(dense.T),
        dense_scale=float(dense_scales[0]),
        dense_bias=g.const(dense_bias_index).astype(np.float32),
        source_md5=g.md5,
    )


def _read_body(g: _Graph, *, first: int) -> tuple[list[ConvLayer], int]:
    """The convolutions from op ``first`` up to the MEAN; returns them and MEAN's position."""
    layers: list[ConvLayer] = []
    position = first
    while g.ops[position][0] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kind, (x_index, w_index, b_index), (y_index,), options = g.ops[position]
        if options.padding != _PADDING_SAME or options.fusedActivationFunction != _ACTIVATION_RELU:
            raise ModelError(f"{g.path}: op {position} ({kind}) is not SAME-padded with ReLU; expected both")
        if options.strideH != options.strideW or getattr(options, "depthMultiplier", 1) != 1:
            raise ModelError(f"{g.path}: op {position} ({kind}) has unequal strides or a depth multiplier")
        raw = g.const(w_index)
        # TFLite: conv [out, kh, kw, in], depthwise [1, kh, kw, channels]; ONNX: [out, in/groups, kh, kw].
        depthwise = kind == "DEPTHWISE_CONV_2D"
        weight = np.ascontiguousarray(raw.transpose(3, 0, 1, 2) if depthwise else raw.transpose(0, 3, 1, 2))
        scales = None
        if raw.dtype == np.int8:
            scales, axis = g.scales(w_index)
            if axis != (3 if depthwise else 0) or scales.size != weight.shape[0]:
                raise ModelError(f"{g.path}: op {position} scales on axis {axis}; expected per output channel")
        in_h, in_w = g.shape(x_index)[1:3]
        out_h, out_w = g.shape(y_index)[1:3]
        kernel_h, kernel_w = weight.shape[2:]
        stride = int(options.strideH)
        # TF 'SAME': total padding (out - 1) * stride + kernel - in, the odd one at the end.
        total_h = max((out_h - 1) * stride + kernel_h - in_h, 0)
        total_w = max((out_w - 1) * stride + kernel_w - in_w, 0)
        layers.append(
            ConvLayer(
                weight=weight,
                scales=scales,
                bias=g.const(b_index).astype(np.float32),
                stride=stride,
                pads=(total_h // 2, total_w // 2, total_h - total_h // 2, total_w - total_w // 2),
                groups=weight.shape[0] if depthwise else 1,
            )
        )
        position += 1
    return layers, position


__all__ = ["ConvLayer", "YamnetConstants", "read_constants"]
