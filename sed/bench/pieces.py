"""Long recordings cut into pieces that score exactly as the whole file does.

A long file is split so that its pieces can run as independent tasks (on several cores or
machines). Piece ``k`` *owns* the 16 kHz samples ``[start, stop)``; it is streamed from
:data:`WARMUP_S` before ``start`` and past ``stop`` until :data:`MARGIN_S` has gone by and no
event is live. It keeps what it owns:

- detections whose onset lies in ``[start, stop)``;
- the per-window maxima and YAMNet window scores of windows that begin in ``[start, stop)``.

Why that equals one run over the whole file: every boundary is a multiple of the pushes, the
detector's and YAMNet's window hops and the front end's frame hop, so each owned window
sees the same samples, frames and push batches as in the whole-file run; the detector's
state beyond a window (front-end frames kept for onset estimates, :data:`WARMUP_S` covers
them) is rebuilt during the warm-up. One thing can differ: an event longer than the
warm-up that is still live at ``start`` (the piece may start it afresh).

Only files recorded at 16 kHz are cut. A file at another rate is one task: a resampler
started part-way settles within milliseconds but rounds differently from one that ran from
the file's start (scores differed in the seventh digit), and reports must be identical
whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf

from sed.bench.runner import Detection, ScorerSpec, SignalChunks, run_streams
from sed.dsp.audio_io import stream_audio
from sed.errors import AudioFormatError
from sed.models import StreamingDetector
from sed.models.yamnet_litert import HOP_SAMPLES as YAMNET_HOP_SAMPLES
from sed.models.yamnet_litert import SAMPLE_RATE_HZ

#: Audio streamed before a piece's first owned sample, s: rebuilds the detector's state.
WARMUP_S = 48.0
#: Audio streamed after a piece's last owned sample before it may stop (when no event is live), s.
MARGIN_S = 48.0
#: Default piece length, s: a 10-hour file makes 20 tasks.
PIECE_S = 1800.0


@dataclasses.dataclass(frozen=True)
class Piece:
    """Samples ``[start, stop)`` (16 kHz) of one file; ``stop`` is ``None`` for the file's last piece."""

    path: str
    index: int
    start: int
    stop: int | None
    native_rate_hz: int
    tail_samples: int
    chunk_samples: int
    n_owned_samples: int  # samples it owns (its cost)


@dataclasses.dataclass
class PieceResult:
    path: str
    index: int
    detections: list[Detection]
    max_scores: np.ndarray  # (n_labels,) over owned windows
    yamnet_scores: dict[str, np.ndarray] | None  # label -> (n_groups, owned windows)
    n_signal_samples: int  # samples of the file this piece read (the whole file's, for the last piece)
    sed_cpu_s: float
    yamnet_cpu_s: float
    error: str | None = None


def alignment_samples(detector: StreamingDetector, *, chunk_samples: int) -> int:
    """Smallest step at which pushes, window hops, frames and one second (any file rate) all align."""
    meta = detector.metadata
    return math.lcm(
        chunk_samples, meta.hop_samples, meta.frontend.hop_length_samples, YAMNET_HOP_SAMPLES, SAMPLE_RATE_HZ
    )


def plan_pieces(
    path: str, detector: StreamingDetector, *, tail_samples: int, chunk_samples: int, piece_s: float = PIECE_S
) -> list[Piece]:
    """Cut ``path`` into pieces of about ``piece_s`` (one piece when it is short or not at 16 kHz).

    Raises
    ------
    AudioFormatError
        The file cannot be opened.
    """
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFormatError(f"{path}: unreadable audio file ({exc})") from exc
    rate = int(info.samplerate)
    n_samples = int(info.frames) * SAMPLE_RATE_HZ // max(rate, 1)
    align = alignment_samples(detector, chunk_samples=chunk_samples)
    length = max(align, round(piece_s * SAMPLE_RATE_HZ / align) * align)
    warmup = math.ceil(WARMUP_S * SAMPLE_RATE_HZ / align) * align
    margin = math.ceil(MARGIN_S * SAMPLE_RATE_HZ / align) * align
    starts = list(range(0, n_samples, length)) if rate == SAMPLE_RATE_HZ else [0]
    # the last piece holds at least a margin and the warm-up, so no other piece reaches the file's end
    while len(starts) > 1 and n_samples - starts[-1] < margin + warmup + align:
        starts.pop()
    bounds = [*starts[1:], None]
    return [
        Piece(path, k, start, stop, rate, tail_samples, chunk_samples, (n_samples if stop is None else stop) - start)
        for k, (start, stop) in enumerate(zip(starts, bounds, strict=True))
    ]


def score_piece(piece: Piece, *, spec: ScorerSpec) -> PieceResult:
    """Stream one piece through the detectors of ``spec``; a task of the run."""
    detector, yamnet = spec.build()
    align = alignment_samples(detector, chunk_samples=piece.chunk_samples)
    first = max(0, piece.start - math.ceil(WARMUP_S * SAMPLE_RATE_HZ / align) * align)
    keep_until = None if piece.stop is None else piece.stop + math.ceil(MARGIN_S * SAMPLE_RATE_HZ / align) * align
    owned_max = np.zeros(len(detector.labels), np.float32)
    n_windows = 0

    def owned(scores: np.ndarray) -> None:
        nonlocal n_windows
        # window k of this stream begins at sample first + k * hop of the file
        begins = first + (n_windows + np.arange(scores.shape[2])) * detector.metadata.hop_samples
        mine = (begins >= piece.start) & (True if piece.stop is None else begins < piece.stop)
        if mine.any():
            np.maximum(owned_max, scores[0][:, mine].max(axis=1), out=owned_max)
        n_windows += scores.shape[2]

    signal = SignalChunks(
        stream_audio(
            piece.path, sample_rate_hz=SAMPLE_RATE_HZ, start_frame=first * piece.native_rate_hz // SAMPLE_RATE_HZ
        ),
        lead_samples=0,
        tail_samples=piece.tail_samples if piece.stop is None else 0,
        chunk_samples=piece.chunk_samples,
    )
    detector.on_scores = owned
    try:
        run, yrun = run_streams(
            detector, yamnet, _until_quiet(signal, detector, first, keep_until), origin_samples=-first
        )
    except AudioFormatError as exc:
        return PieceResult(piece.path, piece.index, [], owned_max, None, 0, 0.0, 0.0, error=str(exc))
    finally:
        detector.on_scores = None
    stop = math.inf if piece.stop is None else piece.stop
    detections = [d for d in run.detections if piece.start <= round(d.onset_s * SAMPLE_RATE_HZ) < stop]
    yamnet_scores = None
    if yrun is not None:
        begins = first + np.arange(next(iter(yrun.scores.values())).shape[1]) * YAMNET_HOP_SAMPLES
        mine = (begins >= piece.start) & (begins < stop)
        yamnet_scores = {label: scores[:, mine] for label, scores in yrun.scores.items()}
    return PieceResult(
        piece.path,
        piece.index,
        detections,
        owned_max,
        yamnet_scores,
        first + signal.n_signal_samples,
        run.cpu_s,
        yrun.cpu_s if yrun is not None else 0.0,
    )


def _until_quiet(
    chunks: SignalChunks, detector: StreamingDetector, first: int, keep_until: int | None
) -> Iterator[np.ndarray]:
    """``chunks`` until sample ``keep_until`` of the file has passed and no event is live."""
    position = first
    for chunk in chunks:
        if keep_until is not None and position >= keep_until and detector.n_live_events == 0:
            return
        yield chunk
        position += len(chunk)


def join(pieces: list[PieceResult], labels: tuple[str, ...]) -> dict[str, Any]:
    """One file's results from its pieces (in order): what a single run over it returns."""
    error = next((p.error for p in pieces if p.error), None)
    if error is not None:
        return {"error": error}
    with_yamnet = pieces[0].yamnet_scores is not None
    maxima = np.max([p.max_scores for p in pieces], axis=0)
    return {
        # in onset order: pieces finish their events in their own order, one run in another
        "detections": sorted((d for p in pieces for d in p.detections), key=lambda d: (d.onset_s, d.label)),
        "max_scores": {label: float(maxima[k]) for k, label in enumerate(labels)},
        "yamnet_scores": (
            {
                label: np.concatenate([p.yamnet_scores[label] for p in pieces], axis=1)
                for label in pieces[0].yamnet_scores
            }
            if with_yamnet
            else None
        ),
        "n_signal_samples": pieces[-1].n_signal_samples,
        "sed_cpu_s": sum(p.sed_cpu_s for p in pieces),
        "yamnet_cpu_s": sum(p.yamnet_cpu_s for p in pieces),
    }


__all__ = ["MARGIN_S", "PIECE_S", "WARMUP_S", "Piece", "PieceResult", "join", "plan_pieces", "score_piece"]
