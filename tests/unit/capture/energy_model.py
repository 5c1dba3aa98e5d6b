"""A loudness detector as a real sed ONNX model, for tests of the sensor around the model.

Score of a window = ``sigmoid((max over frames of the mean log-mel level - level_db) / 3 dB)``,
one label (``gunshot``). It runs through the real :class:`~sed.models.StreamingDetector`
(front end, batching, hysteresis, event spans), so tests of the daemon, the transport and
the clock do not depend on how well the trained classifier happens to be doing, and
they know exactly which sounds must be detected: anything loud.
"""

from __future__ import annotations

from pathlib import Path

from sed.dsp.frontend import FrontendParams
from sed.models.metadata import METADATA_KEY, ClassThresholds, ModelMetadata

#: Frames per score window (about 1 s) and between scores (160 ms).
WINDOW_FRAMES = 98
HOP_FRAMES = 16


def energy_metadata(*, version: str = "energy-test-1") -> ModelMetadata:
    return ModelMetadata(
        version=version,
        labels=("gunshot",),
        frontend=FrontendParams(),
        window_frames=WINDOW_FRAMES,
        hop_frames=HOP_FRAMES,
        thresholds={"gunshot": ClassThresholds(on=0.5, off=0.3, min_hops=1)},
        extra={"purpose": "tests: loudness detector, not a classifier"},
    )


def build_energy_model(path: Path, *, level_db: float = -30.0) -> Path:
    """Write the loudness detector to ``path`` (needs the ``onnx`` dev dependency)."""
    import onnx
    from onnx import TensorProto, helper

    meta = energy_metadata()
    nodes = [
        helper.make_node("ReduceMean", ["log_mel"], ["level"], axes=[1], keepdims=1),
        helper.make_node(
            "MaxPool", ["level"], ["loudest"], kernel_shape=[meta.window_frames], strides=[meta.hop_frames]
        ),
        helper.make_node("Sub", ["loudest", "threshold_db"], ["excess"]),
        helper.make_node("Mul", ["excess", "inverse_width"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "energy",
        [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", meta.frontend.n_mels, "n_frames"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1, "n_scores"])],
        initializer=[
            helper.make_tensor("threshold_db", TensorProto.FLOAT, [], [level_db]),
            helper.make_tensor("inverse_width", TensorProto.FLOAT, [], [1 / 3.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
