"""The picture beside the clip player: the log-mel spectrogram the detector saw, as a PNG."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import soundfile

from sed.dsp.frontend import FrontendParams, log_mel
from sed.errors import AudioFormatError

#: Mel bands in the picture (its height in pixels).
N_MELS_DISPLAY = 96
#: Dynamic range shown below the loudest cell, dB.
DISPLAY_RANGE_DB = 80.0
#: Frame and hop of the display at 16 kHz, samples (32 ms / 10 ms); scaled with the clip's rate.
N_FFT_AT_16K, HOP_AT_16K = 512, 160


def spectrogram_png(clip: bytes) -> bytes:
    """Render an evidence clip (FLAC bytes) as a colour log-mel spectrogram.

    Returns
    -------
    bytes
        A PNG of ``N_MELS_DISPLAY`` rows (low frequencies at the bottom) by one column per
        10 ms hop.

    Raises
    ------
    AudioFormatError
        If the clip cannot be decoded.
    """
    try:
        audio, sample_rate_hz = soundfile.read(io.BytesIO(clip), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioFormatError(f"evidence clip: undecodable ({exc})") from None
    scale = sample_rate_hz / 16000
    n_fft = int(2 ** np.ceil(np.log2(N_FFT_AT_16K * scale)))
    params = FrontendParams(
        sample_rate_hz=sample_rate_hz,
        n_fft=n_fft,
        win_length_samples=n_fft,
        hop_length_samples=max(1, round(HOP_AT_16K * scale)),
        n_mels=N_MELS_DISPLAY,
        fmin_hz=50.0,
        fmax_hz=sample_rate_hz / 2,
    )
    mono = np.ascontiguousarray(audio.mean(axis=1, dtype=np.float32)[None, :])
    if mono.shape[1] < n_fft:
        mono = np.pad(mono, ((0, 0), (0, n_fft - mono.shape[1])))
    db = log_mel(mono, params)[0]
    top = float(db.max())
    buffer = io.BytesIO()
    matplotlib.image.imsave(
        buffer, db, cmap="magma", origin="lower", vmin=top - DISPLAY_RANGE_DB, vmax=top, format="png"
    )
    return buffer.getvalue()


__all__ = ["spectrogram_png"]
