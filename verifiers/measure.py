"""Two measuring stacks for the analyzer answerers, each independent of the annotate chain's models.

- `whisper`: Whisper tiny.en (annotate uses Whisper base) for speech presence, word timings (speaking
  rate) and how confidently the clip is English; librosa's pYIN pitch tracker (annotate uses Praat's
  autocorrelation tracker); BS.1770 loudness over the spoken span (the whole clip when nobody speaks); no SNR.
- `signal`: no neural model at all: WebRTC VAD (annotate uses Silero), YIN pitch, syllable nuclei
  counted as peaks of the voiced band envelope (De Jong & Wempe, 2009), SNR between VAD speech and
  non-speech frames, clipping as runs of samples stuck at the peak, speakers from pitch clusters.

A stack returns what it can measure; a missing value makes its answerer abstain on that question. Neither
runs the annotator's code: they share with it only the definitions of the units the tag bins are in
(spectral flatness in `dataflux.audio`, syllables in `dataflux.syllables`).
"""

from __future__ import annotations

import numpy as np

from dataflux.audio import TARGET_SR, spectral_flatness
from dataflux.syllables import count_syllables

STACKS = ("whisper", "signal")


def _db(power: float) -> float:
    return float(10 * np.log10(max(power, 1e-12)))


def _f0_stats(f0: np.ndarray) -> dict:
    voiced = f0[np.isfinite(f0) & (f0 > 0)]
    if voiced.size < 10:
        return {}
    return {"f0_median_hz": float(np.median(voiced))}


def _content(x: np.ndarray, speech: bool) -> dict:
    return {"speech": speech, "flatness": spectral_flatness(x)}


class WhisperStack:
    name = "whisper"

    def __init__(self, threads: int = 0):
        from faster_whisper import WhisperModel

        from dataflux.models import whisper_model_path

        self.model = WhisperModel(whisper_model_path("tiny.en"), device="cpu", compute_type="int8",
                                  cpu_threads=threads)
        import pyloudnorm

        self.meter = pyloudnorm.Meter(TARGET_SR)

    def measure(self, x: np.ndarray) -> dict:
        import librosa

        # temperature 0 only: faster-whisper's default falls back to sampling on hard clips, which made
        # this listener answer differently from run to run
        segments, _ = self.model.transcribe(x, beam_size=1, word_timestamps=True, temperature=0.0,
                                            condition_on_previous_text=False)
        segments = list(segments)
        words = [w for s in segments for w in (s.words or []) if any(c.isalnum() for c in w.word)]
        no_speech = float(np.mean([s.no_speech_prob for s in segments])) if segments else 1.0
        speech = len(words) >= 2 and no_speech < 0.6
        out = _content(x, speech)
        out["clipping_ratio"] = float(np.mean(np.abs(x) >= 0.999))
        if not speech:
            out["loudness_lufs"] = self._loudness(x)
            return out
        logprob = float(np.mean([s.avg_logprob for s in segments]))
        out["english"] = True if logprob > -0.6 else None  # an English-only model can vouch only for English
        span = words[-1].end - words[0].start
        if span > 0.3:
            out["rate_sps"] = sum(count_syllables(w.word) for w in words) / span
        start, end = int(words[0].start * TARGET_SR), int(words[-1].end * TARGET_SR)
        out["loudness_lufs"] = self._loudness(x[start:end])
        f0, _, _ = librosa.pyin(x, fmin=60, fmax=500, sr=TARGET_SR, frame_length=1024)
        out.update(_f0_stats(f0))
        return out  # no SNR: word timings are too loose to separate speech from background

    def _loudness(self, x: np.ndarray) -> float | None:
        if len(x) < int(0.4 * TARGET_SR):  # BS.1770 needs one 400 ms gating block
            return None
        value = self.meter.integrated_loudness(x.astype(np.float64))
        return float(value) if np.isfinite(value) else None


class SignalStack:
    name = "signal"
    FRAME_S = 0.02

    def __init__(self, threads: int = 0, aggressiveness: int = 2):
        import webrtcvad

        self.vad = webrtcvad.Vad(aggressiveness)

    def measure(self, x: np.ndarray) -> dict:
        import librosa

        frame = int(self.FRAME_S * TARGET_SR)
        n = len(x) // frame
        frames = x[: n * frame].astype(np.float64).reshape(n, frame)
        pcm = (np.clip(x[: n * frame], -1, 1) * 32767).astype(np.int16)
        voiced_vad = np.array([self.vad.is_speech(pcm[i * frame:(i + 1) * frame].tobytes(), TARGET_SR)
                               for i in range(n)], bool) if n else np.zeros(0, bool)
        power = (frames ** 2).mean(axis=1) if n else np.zeros(0)
        loud = power > np.max(power, initial=0) * 10 ** (-4.5)  # within 45 dB of the loudest frame
        mask = voiced_vad & loud
        f0 = librosa.yin(x, fmin=60, fmax=500, sr=TARGET_SR, frame_length=1024, hop_length=frame)[:n]
        # YIN returns an estimate everywhere: keep frames the VAD calls speech and whose pitch is steady
        steady = np.abs(np.diff(np.log(f0), prepend=np.log(f0[:1]))) < 0.08 if len(f0) else np.zeros(0, bool)
        pitched = mask[:len(f0)] & steady
        level = 10 * np.log10(power + 1e-12)
        loud_level = level[power > np.max(power, initial=0) * 1e-4]
        # Speech: voiced most of the time it is active, with the syllabic rise and fall of its level
        # (std >= 5.5 dB over 20 ms frames) and pauses between words (frames 30 dB under the peak).
        # Noise is unvoiced, tones and music hold a steady level without gaps.
        speech = bool(n and mask.mean() >= 0.3 and pitched.sum() >= 0.5 * max(mask.sum(), 1)
                      and np.std(loud_level) >= 5.5 and np.mean(level < level.max() - 30) >= 0.03)
        out = _content(x, speech)
        out["clipping_ratio"] = _stuck_ratio(x)
        active = mask if speech else power > np.max(power, initial=0) * 10 ** (-4.5)
        # BS.1770's -0.691 dB offset, and about +1 dB that K-weighting adds on speech and broadband sound
        out["loudness_lufs"] = _db(np.mean(power[active])) - 0.691 + 1.0 if active.any() else None
        out.update(_beyond_speech(x, speech, out["flatness"]))
        if not speech:
            return out
        speech_power = np.mean(power[mask])
        floor = np.mean(power[~mask]) if (~mask).sum() * self.FRAME_S >= 0.3 else np.percentile(power, 10)
        out["snr_db"] = _db(speech_power) - _db(floor)
        out.update(_f0_stats(np.where(pitched, f0, np.nan)))
        out["rate_sps"] = _syllable_rate(x, mask)
        out["num_speakers"] = _pitch_clusters(f0, pitched, int(1.0 / self.FRAME_S))
        return out


def _levels(x: np.ndarray, frame: int, hop: int | None = None) -> np.ndarray:
    hop = hop or frame
    n = 1 + (len(x) - frame) // hop if len(x) >= frame else 0
    if not n:
        return np.zeros(0)
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    return 10 * np.log10((x.astype(np.float64)[idx] ** 2).mean(axis=1) + 1e-12)


def _beyond_speech(x: np.ndarray, speech: bool, flatness: float | None) -> dict:
    """Measurements for the non-speech and recording leaves, by methods other than the annotator's
    (`dataflux.annotate.acoustics`): energy rises instead of spectral flux, envelope autocorrelation
    instead of onset intervals, energy concentration instead of harmonic/percussive separation, an FFT
    peak instead of YIN, Schroeder backward integration of the final decay instead of the decay-rate
    distribution, a 99.9 % spectral roll-off instead of a spectrum threshold, 30 ms instead of 50 ms
    frames for the level spread. Binned with the same thresholds as the annotator's values."""
    level = _levels(x, 160)  # 10 ms
    out: dict = {"dynamic_range_db": None, "rt60_s": None, "bandwidth_hz": _rolloff(x)}
    spread = _levels(x, 480, 240)
    spread = spread[spread > -80]
    if spread.size >= 10:
        out["dynamic_range_db"] = float(np.percentile(spread, 95) - np.percentile(spread, 10))
    if level.size < 20:
        return out
    out["rt60_s"] = _final_decay_rt60(x)
    if speech:
        return {**out, "sound_class": "speech"}
    rises = _rises(level)
    out["onset_count"] = len(rises)
    out["tempo_bpm"] = _envelope_tempo(level) if len(rises) >= 4 else None
    power = 10 ** (level / 10)
    top = np.sort(power)[::-1][: max(1, level.size // 10)].sum() / max(power.sum(), 1e-20)
    # energy in the loudest tenth of the frames: ~0.1 for a held tone, ~1 for clicks; as a 0-1 "harmonic" share
    out["harmonic_ratio"] = float(np.clip((1 - top) / 0.9, 0, 1))
    out["tone_hz"] = _steady_peak(x)
    rms = _db(float(np.mean(x.astype(np.float64) ** 2)))
    if rms < -50:
        out["sound_class"] = "silence"
    elif flatness is not None and flatness < 0.05 and (out["tempo_bpm"] or len(rises) >= 2):
        out["sound_class"] = "music"
    elif flatness is not None and flatness < 0.05 and out["tone_hz"] is None and out["harmonic_ratio"] > 0.8:
        out["sound_class"] = "tone"  # a glide: pitched, held, no attacks
    elif out["tone_hz"] is not None and not rises:
        out["sound_class"] = "tone"
    elif out["tempo_bpm"] is not None and out["harmonic_ratio"] < 0.2:
        out["sound_class"] = "music"  # a steady percussive beat
    elif flatness is not None and flatness >= 0.1:
        out["sound_class"] = "noise"
    return out


def _rises(level: np.ndarray, rise_db: float = 6.0) -> list[int]:
    """Frames where the 10 ms level climbs `rise_db` within 30 ms to within 30 dB of the peak, 80 ms apart."""
    peak, starts = level.max(), []
    for i in range(3, level.size - 3):
        if level[i:i + 3].max() - level[i - 3:i].min() >= rise_db and level[i:i + 3].max() > peak - 30 \
                and level[i - 1] <= level[i] and (not starts or i - starts[-1] >= 8):
            if level[i - 3:i].min() < level[i:i + 3].max() - rise_db:
                starts.append(i)
    return starts


def _envelope_tempo(level: np.ndarray) -> float | None:
    """BPM from the strongest autocorrelation peak of the 10 ms energy envelope at 0.2-2 s lags
    (the shortest lag within 80 % of the strongest, against octave errors), refined by a parabola."""
    env = 10 ** (level / 20)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[env.size - 1:]
    if ac[0] <= 0:
        return None
    ac = ac / ac[0]
    lo, hi = 20, min(200, ac.size - 2)
    if hi <= lo:
        return None
    peaks = [k for k in range(lo, hi) if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1] and ac[k] > 0.3]
    if not peaks:
        return None
    best = max(ac[k] for k in peaks)
    k = next(k for k in peaks if ac[k] >= 0.8 * best)
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
    return float(60.0 / ((k + shift) * 0.01))


def _steady_peak(x: np.ndarray) -> float | None:
    """The strongest spectral peak (parabolic interpolation) when every quarter-second holds it within 3 %."""
    seg = TARGET_SR // 4
    peaks = []
    for i in range(0, len(x) - seg + 1, seg):
        part = x[i:i + seg].astype(np.float64)
        if np.sqrt(np.mean(part ** 2)) < 1e-4:
            continue
        spec = np.abs(np.fft.rfft(part * np.hanning(seg), 4 * seg))
        k = int(np.argmax(spec[1:-1])) + 1
        a, b, c = np.log(spec[k - 1:k + 2] + 1e-20)
        peaks.append((k + 0.5 * (a - c) / (a - 2 * b + c)) * TARGET_SR / (4 * seg))
    if len(peaks) < 2:
        return None
    median = float(np.median(peaks))
    return median if np.all(np.abs(np.array(peaks) / median - 1) <= 0.03) else None


def _final_decay_rt60(x: np.ndarray) -> float | None:
    """Schroeder backward integration from the last frame within 20 dB of the peak to the end of the
    clip; the slope between -5 and -25 dB of that curve, extrapolated to 60 dB (T20)."""
    level = _levels(x, 320, 160)
    loud = np.flatnonzero(level > level.max() - 20)
    start = int(loud[-1]) * 160
    tail = x[start:].astype(np.float64) ** 2
    if tail.size < TARGET_SR // 10:
        return None
    edc = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / tail.sum() + 1e-20)
    fit = np.flatnonzero((edc <= -5) & (edc >= -25))
    if fit.size < TARGET_SR // 50:
        return None
    slope = np.polyfit(fit / TARGET_SR, edc[fit], 1)[0]
    return float(-60.0 / slope) if slope < 0 else None


def _rolloff(x: np.ndarray, share: float = 0.999) -> float | None:
    """The frequency below which `share` of the spectral energy lies (whole-clip FFT)."""
    if len(x) < 1024 or not np.any(x):
        return None
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    cum = np.cumsum(power) / power.sum()
    return float(np.searchsorted(cum, share) * TARGET_SR / 2 / (power.size - 1))


def _stuck_ratio(x: np.ndarray, run: int = 3) -> float:
    """Fraction of samples in runs of `run`+ consecutive samples at (or within 0.1 % of) full scale."""
    at_peak = np.abs(x) >= 0.999
    if not at_peak.any():
        return 0.0
    edges = np.diff(np.concatenate([[0], at_peak.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    return float(lengths[lengths >= run].sum() / len(x))


def _syllable_rate(x: np.ndarray, mask: np.ndarray) -> float | None:
    """Syllable nuclei: peaks of the 300-3000 Hz level (10 ms frames, 30 ms smoothing) that rise 2 dB
    over the dips beside them, at least 50 ms apart, inside VAD speech and within 25 dB of the loudest;
    per second of the span from the first to the last speech frame."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    band = sosfiltfilt(butter(4, [300, 3000], btype="band", fs=TARGET_SR, output="sos"), x.astype(np.float64))
    hop = TARGET_SR // 100
    n = len(band) // hop
    env = 10 * np.log10((band[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    env = np.convolve(env, np.ones(3) / 3, mode="same")
    peaks, _ = find_peaks(env, prominence=2.0, distance=5)
    in_speech = np.repeat(mask, 2)[:n]
    peaks = [p for p in peaks if p < len(in_speech) and in_speech[p] and env[p] > env.max() - 25]
    active = np.flatnonzero(mask)
    span = (active[-1] - active[0] + 1) * SignalStack.FRAME_S if active.size else 0
    return len(peaks) / span if span >= 0.5 and len(peaks) >= 2 else None


def _pitch_clusters(f0: np.ndarray, pitched: np.ndarray, per_second: int) -> int | None:
    """One speaker unless 1-second chunks fall into two pitch groups more than 45 % apart."""
    medians = [float(np.median(f0[i:i + per_second][pitched[i:i + per_second]]))
               for i in range(0, len(f0), per_second) if pitched[i:i + per_second].sum() >= per_second // 4]
    if len(medians) < 2:
        return None
    low, high = np.percentile(medians, [15, 85])
    return 2 if high / low > 1.45 else 1


def make_stack(name: str, threads: int = 0):
    if name == "whisper":
        return WhisperStack(threads)
    if name == "signal":
        return SignalStack(threads)
    raise ValueError(f"unknown analyzer stack {name!r}: choose {', '.join(STACKS)}")
