"""Convert Google's YAMNet (its waveform TFLite build) into one ONNX model for onnxruntime.

The pole runs one inference runtime. This module reads every constant of
``yamnet_waveform.tflite`` (the framing indices, the Hann window, the FFT length, the mel
matrix and its log offset, the weights of the 27 convolutions and of the classifier) and
writes the same computation as an ONNX graph with a batch axis and a second output, the
1024-d embedding (the global average pool before the classifier)::

    python -m sed.models.train.yamnet_onnx            # writes sed/models/yamnet.onnx, prints figures
    python -m sed.models.train.yamnet_onnx --source DIR/yamnet_waveform.tflite --out /tmp/y.onnx

The weights stay int8 with their per-channel scales (``DequantizeLinear``; onnxruntime
folds them to float32 at load), so the file is 4 MB. The file is byte-for-byte the same
on every run.

Activations: the TFLite file is dynamic-range ("hybrid") quantised, and LiteRT's hybrid
kernels round each int8-weight layer's *input* to 8 bits (255 steps of the window's
maximum). That rounding makes LiteRT's YAMNet discontinuous: on 210 windows of event clips
a 0.1 % gain change moved an XNNPACK score by up to 0.27, and on 423 windows LiteRT's two
CPU kernel sets (XNNPACK, its default, and the builtin reference kernels) disagree with
each other by up to 0.76 on a score. The shipped graph therefore computes in float32 (int8
weights, float activations: YAMNet as trained, less only the weight rounding); the same
gain change moves its scores by < 2e-3, detection AUCs are unchanged and it runs faster.
``--hybrid`` instead reproduces the builtin kernels' rounding (``_Builder.fake_quant``):
the tests use it to show every constant and op was read right (it equals LiteRT builtin on
the coral test vector to 1e-4), and it agrees with LiteRT as closely as LiteRT's two
kernel sets agree with each other, at twice the CPU. Measured figures:
``sed/models/YAMNET_LICENSE.md``.

Needs ``onnx`` and ``ai-edge-litert`` (the TFLite flatbuffer schema, and the reference);
no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from sed.errors import ModelError, SedError
from sed.models.train.yamnet_tflite import YamnetConstants, read_constants
from sed.models.yamnet import (
    EMBEDDING_SIZE,
    METADATA_FORMAT,
    METADATA_KEY,
    N_CLASSES,
    WINDOW_SAMPLES,
    default_yamnet_path,
)

#: TFLite file the converter reads (in :func:`sed.paths.yamnet_dir`).
SOURCE_NAME = "yamnet_waveform.tflite"
#: ONNX opset written.
OPSET = 17
#: Hybrid kernels quantise inputs to int8 over [0, max]: 255 steps.
_INPUT_LEVELS = 255.0
#: ... with zero point -128 (inputs >= 0 use the whole int8 range).
_ZERO_POINT = -128.0


class _Builder:
    """Collects ONNX nodes and initializers under unique, readable names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def op(self, kind: str, inputs: list[str], *, name: str, **attributes: object) -> str:
        self._count += 1
        output = f"{name}_{self._count}"
        self.nodes.append(self._helper.make_node(kind, inputs, [output], name=output, **attributes))
        return output

    def weight(self, name: str, value: np.ndarray, scales: np.ndarray | None, *, axis: int = 0) -> str:
        """A float weight, or an int8 one restored by ``DequantizeLinear`` (the file stays small)."""
        if scales is None:
            return self.const(name, value.astype(np.float32))
        scale = self.const(f"{name}_scale", scales.astype(np.float32))
        zero = self.const(f"{name}_zero", np.zeros(scales.shape, np.int8))
        return self.op("DequantizeLinear", [self.const(name, value), scale, zero], name=f"{name}_dq", axis=axis)

    def fake_quant(self, x: str, *, axes: list[int], name: str) -> str:
        """Round ``x`` (>= 0) to 255 steps of its maximum over ``axes``, as LiteRT's hybrid kernels do.

        LiteRT (``AsymmetricQuantizeFloats``): ``scale = max / 255``, zero point -128,
        ``q = std::round(-128 + x * (1 / scale))``, rounding halves away from zero; the layer
        then computes with ``scale * (q + 128)``. The same float32 steps here, ties included:
        about one value in 65,000 lands on a half, enough to flip a few per layer otherwise.
        """
        peak = self.op("ReduceMax", [x], name=f"{name}_max", axes=axes, keepdims=1)
        # max(peak, tiny): an all-zero input stays zero instead of 0/0 (LiteRT: q = 0 there too).
        floor = self.op("Max", [peak, self.const(f"{name}_tiny", np.float32(1e-30))], name=f"{name}_floor")
        step = self.op("Div", [floor, self.const(f"{name}_levels", np.float32(_INPUT_LEVELS))], name=f"{name}_step")
        inverse = self.op("Reciprocal", [step], name=f"{name}_inv")
        offset = self.const(f"{name}_offset", np.float32(_ZERO_POINT))
        shifted = self.op("Add", [self.op("Mul", [x, inverse], name=f"{name}_scaled"), offset], name=f"{name}_shift")
        half = self.const(f"{name}_half", np.float32(0.5))
        magnitude = self.op(
            "Floor",
            [self.op("Add", [self.op("Abs", [shifted], name=f"{name}_abs"), half], name=f"{name}_h")],
            name=f"{name}_floor_abs",
        )
        rounded = self.op("Mul", [self.op("Sign", [shifted], name=f"{name}_sign"), magnitude], name=f"{name}_round")
        levels = self.op("Sub", [rounded, offset], name=f"{name}_levels")
        return self.op("Mul", [levels, step], name=f"{name}_fq")


def build_onnx(constants: YamnetConstants, *, emulate_hybrid: bool = False) -> bytes:
    """The ONNX model (serialised) computing YAMNet's scores and embedding.

    Parameters
    ----------
    constants : YamnetConstants
        From :func:`read_constants`.
    emulate_hybrid : bool
        Round the inputs of int8-weight layers as LiteRT's builtin hybrid kernels do (see the
        module docstring); False (shipped) computes in float32 throughout.

    Returns
    -------
    bytes
        Input ``waveform`` float32 ``(n_windows, 15600)``; outputs ``scores`` float32
        ``(n_windows, 521)`` and ``embedding`` float32 ``(n_windows, 1024)``.
    """
    import onnx
    from onnx import TensorProto, helper

    b = _Builder()
    n_frames, frame_length = constants.frame_samples.shape
    frames = b.op("Gather", ["waveform", b.const("frame_samples", constants.frame_samples)], name="frames", axis=1)
    # |RFFT| as one matrix product: window and zero-padding folded into cos/sin columns
    # (onnxruntime's DFT kernel took a third of the run time; the product takes a tenth).
    n_bins = constants.fft_length // 2 + 1
    phase = 2.0 * np.pi * np.outer(np.arange(frame_length), np.arange(n_bins)) / constants.fft_length
    basis = constants.window.astype(np.float64)[:, None] * np.concatenate([np.cos(phase), -np.sin(phase)], axis=1)
    parts = b.op(
        "Reshape",
        [
            b.op("MatMul", [frames, b.const("dft_basis", basis.astype(np.float32))], name="dft"),
            b.const("dft_parts_shape", np.array([0, n_frames, 2, n_bins], np.int64)),
        ],
        name="dft_parts",
    )
    magnitude = b.op("Sqrt", [b.op("ReduceSumSquare", [parts], name="power", axes=[2], keepdims=0)], name="magnitude")
    if emulate_hybrid:
        magnitude = b.fake_quant(magnitude, axes=[2], name="magnitude_q")
    mel = b.op(
        "MatMul", [magnitude, b.weight("mel_matrix", constants.mel_int8, np.float32([constants.mel_scale]))], name="mel"
    )
    log_mel = b.op(
        "Log", [b.op("Add", [mel, b.const("log_offset", constants.log_offset)], name="mel_offset")], name="log_mel"
    )
    x = b.op("Unsqueeze", [log_mel, b.const("channel_axis", np.array([1], np.int64))], name="patch")
    for i, layer in enumerate(constants.layers, start=1):
        if emulate_hybrid and layer.scales is not None:
            x = b.fake_quant(x, axes=[1, 2, 3], name=f"conv{i}_in_q")
        weight = b.weight(f"conv{i}_weight", layer.weight, layer.scales)
        conv = b.op(
            "Conv",
            [x, weight, b.const(f"conv{i}_bias", layer.bias)],
            name=f"conv{i}",
            strides=[layer.stride, layer.stride],
            pads=list(layer.pads),
            group=layer.groups,
            kernel_shape=list(layer.weight.shape[2:]),
        )
        x = b.op("Relu", [conv], name=f"relu{i}")
    pooled = b.op("ReduceMean", [x], name="pool", axes=[2, 3], keepdims=0)
    b.nodes.append(helper.make_node("Identity", [pooled], ["embedding"], name="embedding"))
    features = b.fake_quant("embedding", axes=[1], name="embedding_q") if emulate_hybrid else "embedding"
    dense = b.weight("classifier_weight", constants.dense_int8, np.float32([constants.dense_scale]))
    logits = b.op(
        "Add",
        [b.op("MatMul", [features, dense], name="classifier"), b.const("classifier_bias", constants.dense_bias)],
        name="logits",
    )
    b.nodes.append(helper.make_node("Sigmoid", [logits], ["scores"], name="scores"))
    graph = helper.make_graph(
        b.nodes,
        "yamnet",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["n_windows", WINDOW_SAMPLES])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n_windows", N_CLASSES]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n_windows", EMBEDDING_SIZE]),
        ],
        b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="sed.models.train.yamnet_onnx",
        doc_string="Google's YAMNet (AudioSet, 521 classes), Apache-2.0; converted from TFLite by sed",
    )
    model.ir_version = 8
    metadata = {
        "format": METADATA_FORMAT,
        "what": "YAMNet (MobileNet-v1 on 0.975 s log-mel patches, AudioSet 521 classes) with its embedding",
        "licence": "Apache-2.0, Google (TF-Hub google/yamnet/1, tensorflow/models); see YAMNET_LICENSE.md",
        "source_file": SOURCE_NAME,
        "source_md5": constants.source_md5,
        "weights": "int8, per-channel scales (DequantizeLinear), as in the source",
        "activations": "int8-rounded as LiteRT's builtin hybrid kernels" if emulate_hybrid else "float32",
        "converter": "python -m sed.models.train.yamnet_onnx",
        "frames": n_frames,
        "frame_samples": frame_length,
    }
    helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def convert(source: Path, out: Path, *, emulate_hybrid: bool = False) -> YamnetConstants:
    """Read ``source`` (TFLite) and write the ONNX model to ``out``; returns the constants read."""
    constants = read_constants(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build_onnx(constants, emulate_hybrid=emulate_hybrid))
    return constants


def _parser(prog: str) -> argparse.ArgumentParser:
    from sed.runtime import CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument(
        "--source", type=Path, default=None, help=f"TFLite file (default: ../shared/models/yamnet/{SOURCE_NAME})"
    )
    parser.add_argument("--out", type=Path, default=default_yamnet_path(), help="ONNX file to write")
    parser.add_argument("--hybrid", action="store_true", help="round activations as LiteRT's builtin kernels do")
    parser.add_argument(
        "--clips-per-source", type=int, default=6, help="clips per source family of the shared events to compare on"
    )
    parser.add_argument("--windows-per-clip", type=int, default=6)
    parser.add_argument("--timing-calls", type=int, default=200, help="calls timed per batch size (0: no timing)")
    return parser


def main(argv: list[str], *, prog: str = "python -m sed.models.train.yamnet_onnx") -> int:
    """Write the ONNX model, then print its agreement with LiteRT (XNNPACK and builtin kernels)."""
    from sed.models.train.yamnet_check import (
        CORAL_AUDIO,
        LiteRtYamnet,
        agreement,
        clip_windows,
        coral_window,
        cpu_ms_per_window,
    )
    from sed.models.yamnet import YamnetOnnx
    from sed.paths import shared_data_dir, yamnet_dir

    args = _parser(prog).parse_args(argv)
    source = args.source
    if source is None:
        folder = yamnet_dir()
        if folder is None:
            raise ModelError(f"no YAMNet folder: pass --source PATH/{SOURCE_NAME} or set SED_YAMNET_DIR")
        source = folder / SOURCE_NAME
    convert(source, args.out, emulate_hybrid=args.hybrid)
    digest = hashlib.md5(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, md5 {digest})")
    windows = [coral_window(source.parent)] if (source.parent / CORAL_AUDIO).is_file() else []
    data = shared_data_dir()
    if data is not None and (data / "events" / "manifest.csv").is_file():
        windows.append(
            clip_windows(
                data / "events", clips_per_source=args.clips_per_source, windows_per_clip=args.windows_per_clip
            )
        )
    if not windows:
        print("no test audio (coral vector, shared events) found: figures skipped")
        return 0
    batch = np.concatenate(windows)
    onnx_model, litert = YamnetOnnx.from_file(args.out), LiteRtYamnet(source, kernels="xnnpack")
    runs = {"onnx": onnx_model.run(batch), "litert-xnnpack": litert.run(batch)}
    runs["litert-builtin"] = LiteRtYamnet(source, kernels="builtin").run(batch)
    print(f"{len(batch)} windows (coral test vector + shared event clips); absolute differences:")
    for a, b in (("onnx", "litert-xnnpack"), ("onnx", "litert-builtin"), ("litert-xnnpack", "litert-builtin")):
        f = agreement(*runs[a], *runs[b])
        print(
            f"  {a} vs {b}: scores max {f['scores_max']:.2e} p99 {f['scores_p99']:.2e} median "
            f"{f['scores_median']:.1e}; embedding max {f['embedding_max']:.2e} p99 {f['embedding_p99']:.2e}; "
            f"top-1 agreement {f['top1']:.3f}"
        )
    if args.timing_calls:
        print(f"CPU per window, one thread, median of {args.timing_calls} calls:")
        for n in (1, 8):
            onnx_ms = cpu_ms_per_window(onnx_model.run, batch, batch=n, n_calls=args.timing_calls)
            litert_ms = cpu_ms_per_window(litert.run, batch, batch=n, n_calls=args.timing_calls)
            print(f"  batch {n}: onnx {onnx_ms:.2f} ms, litert-xnnpack {litert_ms:.2f} ms")
    return 0


__all__ = ["OPSET", "SOURCE_NAME", "build_onnx", "convert", "main", "read_constants"]


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SedError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
