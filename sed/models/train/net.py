"""The network, its torch log-mel twin of the front end, and ONNX export.

The network is a temporal CNN (mel bands as channels, 1-D convolutions over time, the
TC-ResNet family used for keyword spotting on microcontrollers) with *valid* convolutions
in time. Run over ``window_frames + (n - 1) * hop_frames`` frames it returns ``n`` scores,
each exactly the score of its own window, so the detector scores all new windows of all
streams in one call without recomputing shared frames.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sed.dsp.frontend import FrontendParams, _analysis_window, mel_filterbank
from sed.models.metadata import METADATA_KEY, ModelMetadata


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Layer plan: ``(out_channels, stride)`` per 3-tap convolution, then a max-pool over
    ``pool_scores`` positions and a 1×1 classifier with ``head_channels`` hidden units."""

    layers: tuple[tuple[int, int], ...] = ((96, 1), (96, 2), (128, 2), (128, 1), (160, 2), (160, 1))
    pool_scores: int = 3
    head_channels: int = 96
    dropout: float = 0.2


class TemporalCnn(nn.Module):
    """Log-mel ``(batch, n_mels, n_frames)`` -> sigmoid scores ``(batch, n_labels, n_scores)``."""

    def __init__(self, n_mels: int, n_labels: int, config: NetConfig) -> None:
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(1, n_mels, 1))
        self.register_buffer("feat_scale", torch.ones(1, n_mels, 1))
        blocks = []
        channels = n_mels
        for out_channels, stride in config.layers:
            blocks.append(_ConvBlock(channels, out_channels, stride))
            channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool1d(config.pool_scores, stride=1)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Conv1d(channels, config.head_channels, 1),
            nn.ReLU(),
            nn.Conv1d(config.head_channels, n_labels, 1),
        )
        self.window_frames, self.hop_frames = _receptive_field(config)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feat_mean) * self.feat_scale
        for block in self.blocks:
            x = block(x)
        return self.head(self.pool(x))

    @property
    def state_shapes(self) -> list[tuple[int, int]]:
        """(channels, frames) each layer must remember between streaming steps: the last
        ``kernel - stride`` inputs of every convolution and of the pooling."""
        shapes = [(block.conv.in_channels, 3 - block.conv.stride[0]) for block in self.blocks]
        return [*shapes, (self.head[1].in_channels, self.pool.kernel_size - 1)]

    def step(self, features: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Streaming form: each layer's input is its remembered frames + the new ones.

        With empty states and ``window_frames + (n - 1) * hop_frames`` frames this is
        :meth:`forward`; afterwards every ``n * hop_frames`` new frames give ``n`` more scores,
        computing each frame of each layer once.
        """
        shapes = self.state_shapes
        x = (features - self.feat_mean) * self.feat_scale
        new_states = []
        for i, block in enumerate(self.blocks):
            x = torch.cat([states[i], x], dim=2)
            new_states.append(x[:, :, x.shape[2] - shapes[i][1] :])
            x = block(x)
        x = torch.cat([states[-1], x], dim=2)
        new_states.append(x[:, :, x.shape[2] - shapes[-1][1] :])
        return torch.sigmoid(self.head(self.pool(x))), new_states

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


class _ConvBlock(nn.Module):
    """3-tap valid conv + batch norm + ReLU, residual (centre-cropped) when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 3, stride=stride, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        if self.residual:
            y = y + x[:, :, 1:-1]
        return torch.relu(y)


def _receptive_field(config: NetConfig) -> tuple[int, int]:
    field, jump = 1, 1
    for _, stride in config.layers:
        field += 2 * jump
        jump *= stride
    field += (config.pool_scores - 1) * jump
    return field, jump


class TorchLogMel(nn.Module):
    """:func:`sed.dsp.frontend.log_mel` in torch (same window, filters and floor; tested equal)."""

    def __init__(self, params: FrontendParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer(
            "window", torch.from_numpy(np.array(_analysis_window(params.n_fft, params.win_length_samples)))
        )
        self.register_buffer("filters", torch.from_numpy(np.array(mel_filterbank(params))))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (batch, n_samples) float32 -> (batch, n_mels, n_frames) dB."""
        p = self.params
        frames = audio.unfold(-1, p.n_fft, p.hop_length_samples) * self.window
        spectrum = torch.fft.rfft(frames, dim=-1)
        power = spectrum.real**2 + spectrum.imag**2
        mel = torch.matmul(self.filters, power.transpose(1, 2))
        return 10.0 * torch.log10(torch.clamp(mel, min=p.log_floor))


class _StepModule(nn.Module):
    def __init__(self, net: TemporalCnn) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, new_states = self.net.step(features, list(states))
        return (scores, *new_states)


def export_onnx(model: TemporalCnn, metadata: ModelMetadata, path: Path) -> None:
    """Write the streaming form of ``model`` (:meth:`TemporalCnn.step`) as ONNX (opset 17,
    dynamic batch, time and state lengths) with ``metadata`` embedded.

    Inputs ``log_mel`` and ``state_in_<i>``; outputs ``scores`` and ``state_out_<i>``, with
    ``metadata.state_shapes`` listing each state's (channels, frames).
    """

    model = model.eval()
    shapes = model.state_shapes
    if [tuple(s) for s in metadata.state_shapes] != shapes:
        raise ValueError(f"metadata state_shapes {metadata.state_shapes} != network {shapes}")
    example = torch.zeros(1, metadata.frontend.n_mels, metadata.hop_frames)
    states = [torch.zeros(1, channels, frames) for channels, frames in shapes]
    in_names = [f"state_in_{i}" for i in range(len(shapes))]
    out_names = [f"state_out_{i}" for i in range(len(shapes))]
    dynamic = {metadata.input_name: {0: "batch", 2: "n_frames"}, metadata.output_name: {0: "batch", 2: "n_scores"}}
    dynamic.update({name: {0: "batch", 2: f"{name}_frames"} for name in in_names})
    dynamic.update({name: {0: "batch"} for name in out_names})
    export_with_metadata(
        _StepModule(model).eval(),
        (example, *states),
        path,
        metadata=metadata,
        input_names=[metadata.input_name, *in_names],
        output_names=[metadata.output_name, *out_names],
        dynamic_axes=dynamic,
        producer="sed.models.train",
    )


def export_with_metadata(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    *,
    metadata: ModelMetadata,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict,
    producer: str,
) -> None:
    """``torch.onnx.export`` (opset 17) to ``path`` with ``metadata`` as ``metadata_props["sed"]``."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(tmp),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.producer_name = producer
    onnx.save(proto, str(path))
    tmp.unlink()


__all__ = ["NetConfig", "TemporalCnn", "TorchLogMel", "export_onnx", "export_with_metadata"]
