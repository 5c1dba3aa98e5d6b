from __future__ import annotations

import numpy as np
import pytest

from sed.dsp.frontend import FrontendParams, StreamingLogMel, log_mel, mel_filterbank
from sed.errors import AudioFormatError, ModelError

PARAMS = [
    FrontendParams(),
    FrontendParams(n_fft=512, win_length_samples=512, hop_length_samples=320, n_mels=64),
]


def _audio(rng: np.random.Generator, n_streams: int, n_samples: int) -> np.ndarray:
    noise = rng.standard_normal((n_streams, n_samples)).astype(np.float32) * 0.1
    t = np.arange(n_samples) / 16000
    return (noise + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("params", PARAMS)
def test_log_mel_equals_librosa(params: FrontendParams, rng: np.random.Generator) -> None:
    librosa = pytest.importorskip("librosa")
    audio = _audio(rng, 1, 8000)
    ours = log_mel(audio, params)[0]
    mel = librosa.feature.melspectrogram(
        y=audio[0],
        sr=params.sample_rate_hz,
        n_fft=params.n_fft,
        hop_length=params.hop_length_samples,
        win_length=params.win_length_samples,
        center=False,
        power=2.0,
        n_mels=params.n_mels,
        fmin=params.fmin_hz,
        fmax=params.fmax_hz,
        htk=False,
        norm="slaney",
    )
    reference = librosa.power_to_db(mel, ref=1.0, amin=params.log_floor, top_db=None)
    np.testing.assert_allclose(ours, reference, atol=2e-3)
    np.testing.assert_allclose(
        mel_filterbank(params),
        librosa.filters.mel(
            sr=params.sample_rate_hz, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin_hz, fmax=params.fmax_hz
        ),
        atol=1e-6,
    )


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("chunk", [1, 1280, 4096])
def test_streaming_equals_offline_at_any_chunk_size(
    params: FrontendParams, chunk: int, rng: np.random.Generator
) -> None:
    audio = _audio(rng, 2, 9000)
    stream = StreamingLogMel(params, n_streams=2)
    parts = [stream.push(audio[:, i : i + chunk]) for i in range(0, audio.shape[1], chunk)]
    # the same kernel on the same samples; only BLAS blocking over a different frame count differs
    np.testing.assert_allclose(np.concatenate(parts, axis=2), log_mel(audio, params), rtol=0, atol=1e-4)


def test_batch_of_streams_equals_each_stream_alone(rng: np.random.Generator) -> None:
    audio = _audio(rng, 3, 6000)
    batch = log_mel(audio, PARAMS[1])
    for s in range(3):
        np.testing.assert_allclose(batch[s], log_mel(audio[s : s + 1], PARAMS[1])[0], rtol=0, atol=1e-4)


def test_short_input_gives_no_frames() -> None:
    assert log_mel(np.zeros((1, 100), np.float32), PARAMS[0]).shape == (1, 64, 0)


@pytest.mark.parametrize(
    "block",
    [np.zeros((1, 10), np.float64), np.zeros(10, np.float32), np.full((1, 10), np.nan, np.float32), [0.0] * 10],
)
def test_bad_blocks_raise_audio_format_error(block: object) -> None:
    with pytest.raises(AudioFormatError):
        StreamingLogMel(PARAMS[0], n_streams=1).push(block)  # type: ignore[arg-type]


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ModelError, match="hop_length_samples"):
        FrontendParams(hop_length_samples=0)
    with pytest.raises(ModelError, match="unknown key"):
        FrontendParams.from_dict({"n_ffts": 512})
