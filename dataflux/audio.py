"""Decode, validate, normalise (mono, 16 kHz), split and fingerprint audio.

Every failure is an `AudioError` with a reason code, so ingest can turn it into a reject.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from dataflux.settings import Section

TARGET_SR = 16000

# Magic bytes of the containers we decode; anything else behind an audio extension is not audio.
_MAGIC = {
    "wav": lambda b: b[:4] in (b"RIFF", b"RF64") and b[8:12] == b"WAVE",
    "flac": lambda b: b[:4] == b"fLaC",
    "ogg": lambda b: b[:4] == b"OggS",
    "mp3": lambda b: b[:3] == b"ID3" or (len(b) > 1 and b[0] == 0xFF and (b[1] & 0xE0) == 0xE0),
    "mp4": lambda b: b[4:8] == b"ftyp",
    "aiff": lambda b: b[:4] == b"FORM",
    "webm": lambda b: b[:4] == b"\x1aE\xdf\xa3",
}


class AudioError(Exception):
    def __init__(self, reason_code: str, detail: str):
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


class Limits(Section):
    min_sample_rate: int = 2000
    max_sample_rate: int = 384000
    silence_peak_dbfs: float = -60.0  # a file whose loudest sample is below this is "all silence"
    max_clip_s: float = 30.0
    split_search_s: float = 5.0  # look this far back from max_clip_s for the quietest cut point
    min_clip_s: float = 0.1


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, shape (frames, channels)
    sample_rate: int
    container: str
    decoder: str


def sniff(data: bytes) -> str | None:
    for name, test in _MAGIC.items():
        if test(data):
            return name
    return None


def decode(data: bytes, limits: Limits = Limits()) -> Decoded:
    """Decode a whole file from bytes, with soundfile first and PyAV (FFmpeg) for the rest (m4a, ...)."""
    if len(data) == 0:
        raise AudioError("empty_file", "the file has 0 bytes")
    container = sniff(data)
    if container is None:
        raise AudioError("not_audio", f"no known audio container signature (starts with {data[:8]!r})")
    if container in ("mp4", "webm"):
        decoded = _decode_av(data, container, limits)
    else:
        try:
            decoded = _decode_soundfile(data, container, limits)
        except AudioError:
            raise
        except Exception as sf_error:  # libsndfile refuses some valid files (odd codecs): try FFmpeg
            try:
                decoded = _decode_av(data, container, limits)
            except AudioError:
                raise
            except Exception as av_error:
                raise AudioError("corrupt_audio", f"{container}: soundfile: {sf_error}; pyav: {av_error}") from None
    _validate(decoded, limits)
    return decoded


def _decode_soundfile(data: bytes, container: str, limits: Limits) -> Decoded:
    with sf.SoundFile(io.BytesIO(data)) as f:
        declared = f.frames
        rate = f.samplerate
        _check_rate(rate, limits)
        samples = f.read(dtype="float32", always_2d=True)
    if container == "wav" and declared > 0 and samples.shape[0] < declared:
        raise AudioError("truncated", f"header declares {declared} frames, file holds {samples.shape[0]}")
    if container == "wav":
        _check_wav_data_size(data)
    return Decoded(samples, rate, container, "soundfile")


def _check_wav_data_size(data: bytes) -> None:
    """libsndfile quietly shortens a WAV whose data chunk runs past the end of the file: we do not."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            if size != 0xFFFFFFFF and pos + 8 + size > len(data):
                raise AudioError("truncated", f"data chunk declares {size} bytes, file holds {len(data) - pos - 8}")
            return
        pos += 8 + size + (size & 1)


def _decode_av(data: bytes, container: str, limits: Limits) -> Decoded:
    import av

    try:
        with av.open(io.BytesIO(data)) as f:
            if not f.streams.audio:
                raise AudioError("not_audio", f"{container} container without an audio stream")
            stream = f.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            _check_rate(rate, limits)
            chunks = [_frame_samples(frame) for frame in f.decode(stream)]
    except AudioError:
        raise
    except Exception as e:
        raise AudioError("corrupt_audio", f"{container}: pyav: {e}") from None
    if not chunks:
        raise AudioError("zero_length", "no audio frames")
    return Decoded(np.concatenate(chunks, axis=0), rate, container, "pyav")


def _frame_samples(frame) -> np.ndarray:
    """One PyAV frame as float32 (frames, channels); planar arrays are (channels, n), packed (1, n*ch)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    arr = arr.T if frame.format.is_planar else arr.reshape(-1, channels)
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32, copy=False)


def _check_rate(rate: int, limits: Limits) -> None:
    if not (limits.min_sample_rate <= rate <= limits.max_sample_rate):
        raise AudioError("absurd_sample_rate", f"{rate} Hz is outside "
                         f"[{limits.min_sample_rate}, {limits.max_sample_rate}]")


def _validate(decoded: Decoded, limits: Limits) -> None:
    x = decoded.samples
    if x.shape[0] == 0:
        raise AudioError("zero_length", "no audio frames")
    if not np.isfinite(x).all():
        nans = int(np.isnan(x).sum())
        if nans:
            raise AudioError("nan_samples", f"{nans} NaN samples")
        raise AudioError("infinite_samples", f"{int(np.isinf(x).sum())} infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak <= 10 ** (limits.silence_peak_dbfs / 20):
        peak_db = -np.inf if peak == 0 else 20 * np.log10(peak)
        raise AudioError("all_silence", f"peak {peak_db:.1f} dBFS is at or below {limits.silence_peak_dbfs} dBFS")


def to_mono_16k(decoded: Decoded) -> np.ndarray:
    """Downmix by averaging channels, then resample with soxr (VHQ) to 16 kHz; float32 in [-1, 1]."""
    import soxr

    mono = decoded.samples.mean(axis=1) if decoded.samples.shape[1] > 1 else decoded.samples[:, 0]
    if decoded.sample_rate != TARGET_SR:
        mono = soxr.resample(mono, decoded.sample_rate, TARGET_SR, quality="VHQ")
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def split_points(samples: np.ndarray, limits: Limits = Limits(), sr: int = TARGET_SR) -> list[tuple[int, int]]:
    """Cut audio longer than `max_clip_s` at its quietest 20 ms frame within the search window.

    Works on float or integer samples. Returns (start, end) sample ranges covering the whole signal,
    each at most `max_clip_s` long.
    """
    n = samples.shape[0]
    max_len = int(limits.max_clip_s * sr)
    if n <= max_len:
        return [(0, n)]
    frame = int(0.02 * sr)
    search = int(limits.split_search_s * sr)
    min_len = int(limits.min_clip_s * sr)
    ranges, start = [], 0
    while n - start > max_len:
        lo = start + max(max_len - search, min_len)
        window = samples[lo:start + max_len].astype(np.float64)
        frames = window[: window.size // frame * frame].reshape(-1, frame)
        cut = lo + int(np.argmin((frames ** 2).mean(axis=1))) * frame
        ranges.append((start, cut))
        start = cut
    ranges.append((start, n))
    return ranges


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 with libsndfile's scale (x * 32768), so FLAC round trips are exact."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")



def pcm16_hash(pcm: np.ndarray) -> str:
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def encode_flac(pcm: np.ndarray, sr: int = TARGET_SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(io.BytesIO(data), dtype="float32")
    return samples, sr


def decode_mono(data: bytes) -> np.ndarray:
    """A stored clip's samples as one float32 channel (channels averaged), for models that take a waveform."""
    samples, _ = decode_flac(data)
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def wav_base64(samples: np.ndarray, sr: int = TARGET_SR) -> str:
    """16-bit WAV as base64 text: what an OpenAI-compatible `input_audio` content part carries."""
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def spectral_flatness(x: np.ndarray, frame: int = 512) -> float | None:
    """Median over frames of geometric / arithmetic mean of the power spectrum (Wiener entropy).

    Here, not in an analyzer, because it is a definition both the annotator and the independent verify
    stacks apply, and the one flatness threshold they share (`TagThresholds`) must mean the same thing."""
    if len(x) < frame:
        return None
    frames = x[: len(x) // frame * frame].reshape(-1, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    loud = power.sum(axis=1) > 1e-6 * power.sum(axis=1).max()
    flatness = np.exp(np.log(power[loud]).mean(axis=1)) / power[loud].mean(axis=1)
    return float(np.median(flatness))
