"""Model metadata: what a shipped ONNX file says about itself.

Stored as JSON under the key :data:`METADATA_KEY` in the ONNX file's ``metadata_props``,
so the file alone tells the detector its labels, rate, front end, window, hop and
per-class thresholds. Parsing is strict: unknown or missing fields raise
:class:`~sed.errors.ModelError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from sed.dsp.frontend import FrontendParams
from sed.errors import ModelError
from sed.models.gate import Gate
from sed.wire import Label

#: metadata_props key holding the JSON document.
METADATA_KEY = "sed"
#: Format tag; bump when the document's meaning changes.
METADATA_FORMAT = "sed-model/1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassThresholds:
    """Hysteresis of one class.

    Attributes
    ----------
    on : float in (0, 1]
        A window scoring at least ``on`` starts (or confirms) an event.
    off : float in (0, on]
        An event ends at the first window scoring below ``off``.
    min_hops : int >= 1
        Windows scoring >= ``on`` needed before the event is confirmed and emitted.
    """

    on: float
    off: float
    min_hops: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.on <= 1.0:
            raise ModelError(f"threshold on={self.on}; expected 0 < on <= 1")
        if not 0.0 < self.off <= self.on:
            raise ModelError(f"threshold off={self.off}; expected 0 < off <= on={self.on}")
        if self.min_hops < 1:
            raise ModelError(f"threshold min_hops={self.min_hops}; expected >= 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifierSpec:
    """A two-stage model: the gate picks windows, YAMNet + this file's head score them.

    Attributes
    ----------
    backbone : str
        YAMNet ONNX file, relative to the detector file (``yamnet.onnx``).
    window_samples, hop_samples : int
        The backbone's window and hop (15,600 and 7,680 samples at 16 kHz).
    gate : Gate
    """

    backbone: str
    window_samples: int
    hop_samples: int
    gate: Gate

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "window_samples": self.window_samples,
            "hop_samples": self.hop_samples,
            "gate": self.gate.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: Any, *, where: str) -> VerifierSpec:
        fields = {"backbone", "window_samples", "hop_samples", "gate"}
        if not isinstance(doc, dict) or set(doc) != fields:
            got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise ModelError(f"{where}: metadata field 'verifier' has {got}; expected fields {sorted(fields)}")
        backbone = doc["backbone"]
        if not isinstance(backbone, str) or not backbone or "/" in backbone or "\\" in backbone:
            raise ModelError(f"{where}: metadata field 'verifier.backbone' = {backbone!r}; expected a file name")
        for name in ("window_samples", "hop_samples"):
            if not isinstance(doc[name], int) or doc[name] <= 0:
                raise ModelError(f"{where}: metadata field 'verifier.{name}' = {doc[name]!r}; expected an int > 0")
        gate = Gate.from_dict(doc["gate"], where=f"{where}: metadata field 'verifier.gate'")
        return cls(backbone=backbone, window_samples=doc["window_samples"], hop_samples=doc["hop_samples"], gate=gate)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """Everything the detector needs to know about a model file.

    Attributes
    ----------
    version : str
    labels : tuple of str
        Output rows, each a :class:`sed.wire.Label` value.
    frontend : FrontendParams
        Features the model expects; ``frontend.sample_rate_hz`` is the model's rate.
    window_frames : int > 0
        Feature frames one score looks at (the receptive field).
    hop_frames : int > 0
        Frames between consecutive scores (the network's total stride).
    input_name, output_name : str
        Input ``(batch, n_mels, n_frames)`` log-mel dB; output ``(batch, n_labels, n_scores)``
        sigmoid scores with ``n_scores = 1 + (n_frames - window_frames) // hop_frames``.
    thresholds : mapping label -> ClassThresholds
    state_shapes : tuple of (channels, frames)
        Streaming state of each layer (inputs ``state_in_<i>``, outputs ``state_out_<i>``,
        ``(batch, channels, frames)``; empty on the first call). ``()``: a stateless model,
        given whole windows every call (the detector keeps the overlap).
    verifier : VerifierSpec or None
        Set for a two-stage model: then ``input_name`` takes ``(batch, 1545)`` YAMNet
        embedding + scores and ``output_name`` gives ``(batch, n_labels)``; windows and hops
        are the backbone's, and ``window_frames``/``hop_frames`` the front-end frames inside
        one window and one hop (the gate's view).
    extra : dict
        Free-form provenance (training command, data, dev metrics).
    """

    version: str
    labels: tuple[str, ...]
    frontend: FrontendParams
    window_frames: int
    hop_frames: int
    thresholds: Mapping[str, ClassThresholds]
    input_name: str = "log_mel"
    output_name: str = "scores"
    state_shapes: tuple[tuple[int, int], ...] = ()
    verifier: VerifierSpec | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def sample_rate_hz(self) -> int:
        return self.frontend.sample_rate_hz

    @property
    def window_samples(self) -> int:
        """Audio samples under one score's window."""
        if self.verifier is not None:
            return self.verifier.window_samples
        p = self.frontend
        return (self.window_frames - 1) * p.hop_length_samples + p.n_fft

    @property
    def hop_samples(self) -> int:
        """Audio samples between consecutive scores."""
        if self.verifier is not None:
            return self.verifier.hop_samples
        return self.hop_frames * self.frontend.hop_length_samples

    def to_json(self) -> str:
        doc = {
            "format": METADATA_FORMAT,
            "version": self.version,
            "labels": list(self.labels),
            "frontend": dataclasses.asdict(self.frontend),
            "window_frames": self.window_frames,
            "hop_frames": self.hop_frames,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "state_shapes": [list(s) for s in self.state_shapes],
            "thresholds": {k: dataclasses.asdict(v) for k, v in self.thresholds.items()},
            "extra": dict(self.extra),
        }
        if self.verifier is not None:
            doc["verifier"] = self.verifier.to_dict()
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, where: str = "model") -> ModelMetadata:
        """Parse and validate; errors name ``where`` (the file) and the field."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{where}: metadata '{METADATA_KEY}' is not JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise ModelError(f"{where}: metadata '{METADATA_KEY}' is {type(doc).__name__}; expected an object")
        if doc.get("format") != METADATA_FORMAT:
            raise ModelError(f"{where}: metadata field 'format' = {doc.get('format')!r}; expected {METADATA_FORMAT!r}")
        required = ("version", "labels", "frontend", "window_frames", "hop_frames", "thresholds")
        missing = [name for name in required if name not in doc]
        if missing:
            raise ModelError(f"{where}: metadata lacks field(s) {missing}")
        known = {*required, "format", "input_name", "output_name", "state_shapes", "verifier", "extra"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ModelError(f"{where}: unknown metadata field(s) {unknown}")
        labels = tuple(doc["labels"])
        valid = {label.value for label in Label}
        bad = [label for label in labels if label not in valid]
        if bad or not labels:
            raise ModelError(f"{where}: metadata field 'labels' = {list(labels)}; expected values of {sorted(valid)}")
        try:
            frontend = FrontendParams.from_dict(doc["frontend"])
        except (ModelError, TypeError) as exc:
            raise ModelError(f"{where}: metadata field 'frontend': {exc}") from exc
        for name in ("window_frames", "hop_frames"):
            if not isinstance(doc[name], int) or doc[name] <= 0:
                raise ModelError(f"{where}: metadata field {name!r} = {doc[name]!r}; expected an int > 0")
        shapes = doc.get("state_shapes", [])
        if not isinstance(shapes, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v >= 0 for v in s) for s in shapes
        ):
            raise ModelError(f"{where}: metadata field 'state_shapes' = {shapes!r}; expected [[channels, frames], …]")
        thresholds = {}
        for label in labels:
            entry = doc["thresholds"].get(label)
            if not isinstance(entry, dict):
                raise ModelError(f"{where}: metadata field 'thresholds.{label}' missing or not an object")
            try:
                thresholds[label] = ClassThresholds(**entry)
            except (ModelError, TypeError) as exc:
                raise ModelError(f"{where}: metadata field 'thresholds.{label}': {exc}") from exc
        return cls(
            version=str(doc["version"]),
            labels=labels,
            frontend=frontend,
            window_frames=doc["window_frames"],
            hop_frames=doc["hop_frames"],
            thresholds=thresholds,
            input_name=str(doc.get("input_name", "log_mel")),
            output_name=str(doc.get("output_name", "scores")),
            state_shapes=tuple((int(c), int(f)) for c, f in shapes),
            verifier=VerifierSpec.from_dict(doc["verifier"], where=where) if "verifier" in doc else None,
            extra=dict(doc.get("extra", {})),
        )


__all__ = ["METADATA_FORMAT", "METADATA_KEY", "ClassThresholds", "ModelMetadata", "VerifierSpec"]
