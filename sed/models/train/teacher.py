"""YAMNet as a teacher: where in each weakly labelled training clip the event most likely is.

For every training clip of a model label, YAMNet scores 0.975 s windows every 0.48 s and
we keep the centre of the window with the highest score of that label's class group and
the score itself. The sampler centres crops of long positive clips there (when the teacher
is confident), so a 4 s crop of a 10 s AudioSet segment holds the labelled sound instead
of the speech or music around it. Runs once (about 30 s) and is cached beside the clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from sed.models.train.data import ClipAudio
from sed.models.yamnet_litert import CLASS_GROUPS, HOP_SAMPLES, SAMPLE_RATE_HZ, WINDOW_SAMPLES, YamnetScorer

#: Class group used per label (the broadest group of :data:`CLASS_GROUPS`).
TEACHER_GROUP = {label: next(iter(groups)) for label, groups in CLASS_GROUPS.items()}


def teacher_peaks(data: ClipAudio, *, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: sample index of the teacher's most confident window centre, and its score.

    Returns
    -------
    centre_samples : np.ndarray [shape=(n_clips,), dtype=int64]
        -1 for negative clips.
    scores : np.ndarray [shape=(n_clips,), dtype=float32]
        0 for negative clips.
    """
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return stored["centre_samples"], stored["scores"]
    if data.sample_rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"teacher needs {SAMPLE_RATE_HZ} Hz clips, got {data.sample_rate_hz}")
    scorer = YamnetScorer()
    centres = np.full(len(data), -1, np.int64)
    scores = np.zeros(len(data), np.float32)
    for i, clip in enumerate(tqdm(data.clips, desc="teacher (YAMNet)")):
        if clip.label not in TEACHER_GROUP:
            continue
        wave = data.waveform(i)
        if len(wave) < WINDOW_SAMPLES:
            wave = np.pad(wave, (0, WINDOW_SAMPLES - len(wave)))
        scorer.reset()
        group = list(CLASS_GROUPS[clip.label]).index(TEACHER_GROUP[clip.label])
        window_scores = scorer.push(wave[None, :])[clip.label][0, group]
        k = int(np.argmax(window_scores))
        centres[i] = min(len(data.waveform(i)) - 1, k * HOP_SAMPLES + WINDOW_SAMPLES // 2)
        scores[i] = float(window_scores[k])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, centre_samples=centres, scores=scores)
    return centres, scores


__all__ = ["TEACHER_GROUP", "teacher_peaks"]
