"""Training data: the shared clip manifest, decoded once into a cache at the model's rate."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sed.dsp.audio_io import read_audio
from sed.errors import ConfigError

#: Silence streamed before each clip when it is scored as a stream, s (bench, training, cross-source).
CLIP_LEAD_S = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class Clip:
    """One manifest row: ``label`` is a wire label or ``"negative"``."""

    path: str  # relative to the manifest's folder
    label: str
    split: str
    subclass: str
    source: str
    group: str


def read_manifest(manifest: Path, *, split: str | None = None) -> list[Clip]:
    """Rows of a ``path,label[,split_hint,subclass,group,…]`` CSV, optionally one split only.

    Raises
    ------
    ConfigError
        The file is missing or lacks the ``path``/``label`` columns, or ``split`` is given
        and the file has no ``split_hint`` column.
    """
    if not manifest.is_file():
        raise ConfigError(f"{manifest}: manifest not found")
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"path", "label"} <= columns:
            raise ConfigError(f"{manifest}: columns {sorted(columns)}; expected at least 'path' and 'label'")
        if split is not None and "split_hint" not in columns:
            raise ConfigError(f"{manifest}: --split {split} given but the file has no 'split_hint' column")
        clips = [
            Clip(
                path=row["path"],
                label=row["label"],
                split=row.get("split_hint", ""),
                subclass=row.get("subclass", ""),
                source=row["path"].split("/")[-1].split("__")[0],
                group=row.get("group", row["path"]),
            )
            for row in reader
        ]
    return [c for c in clips if split is None or c.split == split]


@dataclasses.dataclass
class ClipAudio:
    """Decoded clips: ``audio[offsets[i]:offsets[i + 1]]`` is clip ``i`` at ``sample_rate_hz``."""

    clips: list[Clip]
    audio: np.ndarray
    offsets: np.ndarray
    sample_rate_hz: int

    def __len__(self) -> int:
        return len(self.clips)

    def waveform(self, index: int) -> np.ndarray:
        return self.audio[self.offsets[index] : self.offsets[index + 1]]


def load_clips(root: Path, clips: list[Clip], *, sample_rate_hz: int, cache_dir: Path | None) -> ClipAudio:
    """Decode and resample ``clips`` (paths relative to ``root``), through an on-disk cache.

    The cache file is keyed by the clip list and the rate, lives outside the repository
    (``cache_dir``), and is rebuilt when absent.
    """
    key = hashlib.sha1(("\n".join(c.path for c in clips) + f"@{sample_rate_hz}").encode()).hexdigest()[:16]
    cache = cache_dir / f"clips_{sample_rate_hz}_{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return ClipAudio(clips, stored["audio"], stored["offsets"], sample_rate_hz)
    waves = [read_audio(root / c.path, sample_rate_hz=sample_rate_hz) for c in tqdm(clips, desc="decoding clips")]
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in waves])]).astype(np.int64)
    audio = np.concatenate(waves).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, audio=audio, offsets=offsets)
    return ClipAudio(clips, audio, offsets, sample_rate_hz)


__all__ = ["Clip", "ClipAudio", "load_clips", "read_manifest"]
