"""Fit the two-stage detector: the wake gate and the head on YAMNet's embedding and scores.

Both are small and fit in seconds from cached window features
(:mod:`sed.models.train.features`), which is what makes leave-one-source-out evaluation
affordable: every fold refits both from scratch.

* **Head:** a one-hidden-layer network on YAMNet's 1024-d embedding and 521 AudioSet scores
  (standardised; dropout), one sigmoid per class. Labels are per clip and weak (the event
  is somewhere in the clip), so the loss is multiple-instance: for a clip of class ``c`` the
  *highest* window score of ``c`` must be high; for every other class, every window must be
  low (mean over the clip's windows) and so must its highest. Clips are weighted by
  1/sqrt(clips of their source family and label), so no one family dominates. The exported
  score is the geometric mean of the head's and YAMNet's own score of the class
  (:data:`PRIOR_CLASSES`).
* **Gate:** a loudness floor on the window's log-mel statistics
  (:func:`sed.models.gate.window_statistics`) set below the quietest event in the training
  clips: quiet windows (a night street) skip YAMNet.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import numpy as np
import torch

from sed.models.gate import Gate
from sed.models.metadata import ClassThresholds, ModelMetadata, VerifierSpec
from sed.models.train.data import Clip
from sed.models.train.features import HEAD_FEATURES, WindowFeatures, gate_frames
from sed.models.train.net import export_with_metadata
from sed.models.yamnet import EMBEDDING_SIZE, HOP_SAMPLES, WINDOW_SAMPLES, default_yamnet_path

#: Labels of the detector, in output order.
LABELS = ("gunshot", "scream", "glass_break")
#: AudioSet classes whose highest YAMNet score is the class's prior (yamnet_class_map.csv rows):
#: Gunshot/gunfire, Machine gun, Cap gun; Screaming; Glass, Shatter, Breaking.
PRIOR_CLASSES = {"gunshot": (421, 422, 425), "scream": (11,), "glass_break": (435, 437, 464)}
#: The loudness gate's floor lies this far below the quietest event clips' loudest window, dB.
GATE_MARGIN_DB = 10.0
#: Windows are verified every other YAMNet hop (0.96 s: windows meet end to end with 15 ms of
#: overlap), which halves YAMNet's cost; the head is fitted on windows at every hop.
VERIFY_HOP_SAMPLES = 2 * HOP_SAMPLES
#: Source tags that are one recording campaign or collection (file-name prefix before ``__``).
FAMILY_OF_SOURCE = {
    "sesatest": "sesa",
    "sesatrain": "sesa",
    "us8k": "urbansound8k",
    "us8kac": "urbansound8k",
    "zalmotekbg": "zalmotek",
}


def source_family(clip: Clip) -> str:
    """The source family of a clip: its file-name prefix, merged per :data:`FAMILY_OF_SOURCE`."""
    return FAMILY_OF_SOURCE.get(clip.source, clip.source)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeadConfig:
    """Training settings (the defaults are the shipped recipe)."""

    #: "all": YAMNet embedding and scores; "logits": embedding and the scores as logits;
    #: "scores": the 521 AudioSet scores only, as logits.
    inputs: str = "all"
    #: Hidden units; 0 = a linear (logistic) head.
    hidden: int = 128
    #: Multiply in YAMNet's own score of the class (geometric mean, :data:`PRIOR_CLASSES`).
    yamnet_prior: bool = True
    dropout: float = 0.2
    steps: int = 400
    batch_clips: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 20261204


class _Head(torch.nn.Module):
    """Standardise, one hidden layer, sigmoid per class."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, config: HeadConfig) -> None:
        super().__init__()
        self.input_kind = config.inputs
        self.prior = config.yamnet_prior
        self.prior_columns = [[EMBEDDING_SIZE + k for k in PRIOR_CLASSES[label]] for label in LABELS]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        width = len(mean)
        if config.hidden:
            layers = [torch.nn.Linear(width, config.hidden), torch.nn.ReLU(), torch.nn.Dropout(config.dropout)]
            layers.append(torch.nn.Linear(config.hidden, len(LABELS)))
        else:
            layers = [torch.nn.Linear(width, len(LABELS))]
        self.net = torch.nn.Sequential(torch.nn.Dropout(config.dropout), *layers)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The head's view of ``(n, HEAD_FEATURES)`` (see :attr:`HeadConfig.inputs`)."""
        if self.input_kind == "all":
            return x
        p = x[:, EMBEDDING_SIZE:].clamp(1e-4, 1 - 1e-4)
        logits = torch.log(p / (1 - p))
        return logits if self.input_kind == "scores" else torch.cat([x[:, :EMBEDDING_SIZE], logits], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((self.inputs(x) - self.mean) / self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores in [0, 1]: the head's, or (``yamnet_prior``) its geometric mean with YAMNet's.

        YAMNet, trained on two million clips, ranks sounds it has heard far better in the
        tail (few false alarms) than a head fitted on two thousand; the head's part is to
        veto what the local data knows is not the class (fireworks, explosions, clinks).
        """
        p = torch.sigmoid(self.logits(x))
        if not self.prior:
            return p
        prior = torch.stack([x[:, cols].max(dim=1).values for cols in self.prior_columns], dim=1)
        return torch.sqrt(p * prior.clamp(0.0, 1.0))


@dataclasses.dataclass
class FittedDetector:
    """A fitted head and gate (thresholds are chosen elsewhere, on held-out sources)."""

    head: _Head
    gate: Gate

    def head_scores(self, features: np.ndarray) -> np.ndarray:
        """``(n, HEAD_FEATURES)`` -> ``(n, n_labels)`` scores, as the exported file computes them."""
        self.head.eval()
        with torch.no_grad():
            return self.head(torch.tensor(np.asarray(features, np.float32))).numpy()


def clip_labels(clips: list[Clip]) -> np.ndarray:
    """Label index per clip, -1 for negatives."""
    return np.array([LABELS.index(c.label) if c.label in LABELS else -1 for c in clips], np.int64)


def _clip_weights(clips: list[Clip], indices: np.ndarray) -> np.ndarray:
    cells = [(source_family(clips[i]), clips[i].label) for i in indices]
    counts = collections.Counter(cells)
    weights = np.array([1.0 / np.sqrt(counts[c]) for c in cells])
    return weights / weights.mean()


def fit(features: WindowFeatures, clips: list[Clip], train_clips: np.ndarray, config: HeadConfig) -> FittedDetector:
    """Fit head and gate on the windows of ``train_clips`` (indices into ``clips``), all variants."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    windows = np.flatnonzero(np.isin(features.clip_index, train_clips))
    if config.inputs not in ("all", "logits", "scores"):
        raise ValueError(f"HeadConfig.inputs={config.inputs!r}; expected 'all', 'logits' or 'scores'")
    head_x = torch.tensor(features.head[windows].astype(np.float32))
    probe = _Head(np.zeros(1), np.ones(1), config).inputs(head_x)
    mean, scale = probe.mean(0).numpy(), probe.std(0).numpy() + 1e-3
    head = _Head(mean, scale, config)
    # a training "bag" = one clip in one variant: its windows are contiguous in the cache
    keys = features.clip_index[windows].astype(np.int64) * 8 + features.variant[windows]
    bag_starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bag_sizes = np.diff(np.r_[bag_starts, len(windows)])
    bag_clip = features.clip_index[windows][bag_starts]
    labels = clip_labels(clips)[bag_clip]
    targets = torch.zeros(len(bag_clip), len(LABELS))
    targets[labels >= 0, labels[labels >= 0]] = 1.0
    weights = torch.tensor(_clip_weights(clips, bag_clip), dtype=torch.float32)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    head.train()
    for _ in range(config.steps):
        bags = rng.choice(len(bag_clip), size=min(config.batch_clips, len(bag_clip)), replace=False)
        rows = np.concatenate([np.arange(bag_starts[b], bag_starts[b] + bag_sizes[b]) for b in bags])
        segment = torch.tensor(np.repeat(np.arange(len(bags)), bag_sizes[bags]))
        z = head.logits(head_x[rows])
        top = torch.full((len(bags), len(LABELS)), -1e4).scatter_reduce(
            0, segment[:, None].expand(-1, len(LABELS)), z, reduce="amax"
        )
        y = targets[bags]
        every = torch.zeros(len(bags), len(LABELS)).index_add(0, segment, bce(z, torch.zeros_like(z), reduction="none"))
        every = every / torch.tensor(bag_sizes[bags], dtype=torch.float32)[:, None]
        loss = ((bce(top, y, reduction="none") + every * (1 - y)).sum(1) * weights[bags]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    head.eval()
    return FittedDetector(head=head, gate=_loudness_gate(features, windows, clips))


def _loudness_gate(features: WindowFeatures, windows: np.ndarray, clips: list[Clip]) -> Gate:
    """A loudness floor: windows quieter than any event the training clips hold are not verified.

    The statistic is the mean over mel bands of each band's loudest frame (dB); the floor
    sits :data:`GATE_MARGIN_DB` below the 1st percentile of the loudest window of every
    event clip. (A logistic gate on all four statistics, trained on the head's best windows,
    woke half the windows of held-out street audio yet missed 86 % of the held-out
    ShotSpotter shots: it learnt each source's levels, not the sounds.)
    """
    n_mels = features.gate.shape[1] // 4
    loud = features.gate[windows, n_mels : 2 * n_mels].mean(axis=1)
    labels = clip_labels(clips)[features.clip_index[windows]]
    best = np.full(len(clips), -np.inf)
    np.maximum.at(best, features.clip_index[windows][labels >= 0], loud[labels >= 0])
    best = best[np.isfinite(best)]
    floor_db = float(np.percentile(best, 1.0)) - GATE_MARGIN_DB if len(best) else -80.0
    weights = np.zeros(4 * n_mels, np.float32)
    weights[n_mels : 2 * n_mels] = 1.0 / n_mels  # mean over bands of max_db
    # probability >= 0.5 exactly when that mean reaches floor_db
    return Gate(
        mean=np.zeros(4 * n_mels, np.float32),
        scale=np.ones(4 * n_mels, np.float32),
        weights=weights,
        bias=-floor_db,
        threshold=0.5,
    )


def export(
    fitted: FittedDetector,
    path: Path,
    *,
    version: str,
    thresholds: dict[str, ClassThresholds],
    extra: dict,
    hop_samples: int = VERIFY_HOP_SAMPLES,
) -> None:
    """Write the head as ONNX with its metadata; ``yamnet.onnx`` must sit (or be linked) beside it."""
    from sed.dsp.frontend import FrontendParams

    per_window, _ = gate_frames()
    per_hop = hop_samples // FrontendParams().hop_length_samples
    metadata = ModelMetadata(
        version=version,
        labels=LABELS,
        frontend=FrontendParams(),
        window_frames=per_window,
        hop_frames=per_hop,
        thresholds=thresholds,
        input_name="features",
        output_name="scores",
        verifier=VerifierSpec(
            backbone=default_yamnet_path().name,
            window_samples=WINDOW_SAMPLES,
            hop_samples=hop_samples,
            gate=fitted.gate,
        ),
        extra=extra,
    )
    export_with_metadata(
        fitted.head.eval(),
        (torch.zeros(1, HEAD_FEATURES),),
        path,
        metadata=metadata,
        input_names=["features"],
        output_names=["scores"],
        dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
        producer="sed.models.train.head",
    )
    backbone = path.with_name(default_yamnet_path().name)
    if not backbone.exists():
        backbone.symlink_to(default_yamnet_path())


__all__ = ["LABELS", "FittedDetector", "HeadConfig", "clip_labels", "export", "fit", "source_family"]
