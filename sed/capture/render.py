"""``sed render-scene SCENE --out DIR``: a simulated scene written to files, with its ground truth.

Writes, into ``DIR``:

- ``<sensor id>.wav``: each sensor's stream (16 kHz, 32-bit float, so levels and delays
  are kept exactly); sample ``k`` was heard at ``start_utc_ns + k * 62_500`` ns;
- ``truth.json``: the scene, the start time, each sensor's position and file, and per
  event its class, source position, emission time and the exact arrival time (UTC ns and
  s after the start) of its direct sound at every sensor;
- ``annotations.tsv``: DCASE-style ``file onset offset label`` rows (the sound's first
  sample at -20 dB of its peak, to the clip's end), so the streams can be scored with
  ``sed bench detect DIR --annotations DIR/annotations.tsv``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import soundfile
from tqdm import tqdm

from sed.capture.scene import SceneRenderer, ground_truth
from sed.config import SceneConfig, load_config
from sed.units import NS_PER_S

#: Samples rendered per step (bounds memory for long scenes).
RENDER_BLOCK_SAMPLES = 160_000


def render_scene(scene_path: Path, out_dir: Path, *, start_utc_ns: int = 0, progress: bool = True) -> Path:
    """Render every sensor's stream of a scene file; returns the ``truth.json`` path."""
    scene = load_config(scene_path, SceneConfig).scene
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(scene)
    sensors = []
    for sensor in tqdm(scene.sensors, desc="rendering sensors", unit="sensor", disable=not progress):
        renderer = SceneRenderer(scene, sensor.id)
        path = out_dir / f"{sensor.id}.wav"
        with soundfile.SoundFile(path, "w", samplerate=scene.sample_rate_hz, channels=1, subtype="FLOAT") as wav:
            remaining = renderer.n_samples_total
            while remaining > 0:
                n = min(RENDER_BLOCK_SAMPLES, remaining)
                wav.write(renderer.render(n))
                remaining -= n
        sensors.append({**sensor.model_dump(), "file": path.name, "first_sample_utc_ns": start_utc_ns})
    events = [
        {
            **dataclasses.asdict(event),
            "emission_time_ns": start_utc_ns + round(event.emission_time_s * NS_PER_S),
            "arrival_time_ns": {
                sensor_id: start_utc_ns + round(t_s * NS_PER_S) for sensor_id, t_s in event.arrival_time_s.items()
            },
        }
        for event in truth
    ]
    truth_path = out_dir / "truth.json"
    truth_path.write_text(
        json.dumps(
            {
                "scene": str(scene_path),
                "start_utc_ns": start_utc_ns,
                "sample_rate_hz": scene.sample_rate_hz,
                "temperature_c": scene.temperature_c,
                "sensors": sensors,
                "events": events,
            },
            indent=1,
        )
        + "\n"
    )
    rows = []
    for sensor in scene.sensors:
        mine = [
            f"{sensor.id}.wav\t{e.arrival_time_s[sensor.id] + e.onset_s:.4f}\t"
            f"{e.arrival_time_s[sensor.id] + e.duration_s:.4f}\t{e.label}"
            for e in truth
            if e.label != "negative"
        ]
        rows += mine or [f"{sensor.id}.wav"]
    (out_dir / "annotations.tsv").write_text("\n".join(rows) + "\n")
    return truth_path


def main(argv: list[str], *, prog: str) -> int:
    from sed.runtime import CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument("scene", type=Path, help="scene TOML (see deploy/scene.toml)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--start-utc-ns", type=int, default=0, help="UTC ns of every stream's first sample")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    truth = render_scene(args.scene, args.out, start_utc_ns=args.start_utc_ns, progress=not args.no_progress)
    print(f"wrote {args.out}: one WAV per sensor, {truth.name}, annotations.tsv")
    return 0


__all__ = ["render_scene"]
