"""Measurements beyond speech: sound events and rhythm, tonal vs percussive content, the pitch of a
sustained tone, reverberation, bandwidth, dynamic range and the kind of sound (speech, music, tone,
noise, silence). All signal processing (librosa, scipy), offline, each tested on signals whose truth is
known (tests/annotate/test_acoustics.py).

Each `measure_*` function takes 16 kHz mono float audio and returns measurements (None: not measurable
on this clip, e.g. no tempo without a steady beat). `Acoustics` runs them as one analyzer.
"""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer
from dataflux.audio import TARGET_SR

HOP = 160  # 10 ms frames for envelopes and onsets


def frame_db(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Level of each frame in dB re full scale (-120 for digital silence)."""
    if len(x) < frame:
        return np.zeros(0)
    n = 1 + (len(x) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    power = (x.astype(np.float64)[idx] ** 2).mean(axis=1)
    return 10 * np.log10(power + 1e-12)


def measure_onsets(x: np.ndarray, min_rise_db: float = 3.0) -> list[float]:
    """Attack times (s): spectral-flux onsets (librosa) that the broadband level confirms by rising at
    least `min_rise_db` from the 50 ms before to the 50 ms after. The confirmation keeps the random
    flux peaks of stationary noise out: a distinct sound event starts with an audible jump in level."""
    import librosa

    env = librosa.onset.onset_strength(y=x.astype(np.float32), sr=TARGET_SR, hop_length=HOP)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=TARGET_SR, hop_length=HOP, backtrack=True,
                                        wait=8)  # at least 80 ms between events
    level = frame_db(x, HOP, HOP)  # 10 ms levels
    peak = level.max(initial=-120.0)
    times = []
    for f in frames:
        before, after = level[max(0, f - 5):f], level[f:f + 5]
        if before.size < 3 or after.size == 0:  # a sound already on when the clip starts has no attack
            continue
        rise = after.max() - before.mean()
        if rise >= min_rise_db and after.max() > peak - 40:
            times.append(float(f * HOP / TARGET_SR))
    return times


def tempo_from_onsets(times: list[float], max_cv: float = 0.15) -> float | None:
    """Beats per minute of a steady pulse: at least 4 attacks whose intervals vary by under `max_cv`
    (coefficient of variation). The period is the span over the number of beats in it, so the 10 ms
    onset grid costs well under 1 BPM over a few seconds."""
    if len(times) < 4:
        return None
    ioi = np.diff(times)
    median = float(np.median(ioi))
    if median <= 0 or np.std(ioi) / np.mean(ioi) > max_cv:
        return None
    beats = round((times[-1] - times[0]) / median)
    bpm = 60.0 * beats / (times[-1] - times[0])
    return float(bpm) if 30 <= bpm <= 300 else None


def measure_harmonic_ratio(x: np.ndarray) -> float | None:
    """Share of the energy in the harmonic part of a median-filter harmonic/percussive separation
    (Fitzgerald 2010, librosa's HPSS): near 1 for sustained tones, near 0 for clicks and drums."""
    import librosa

    # 32 ms hops and the first 20 s: the share is a clip-level figure, and the median filters dominate the cost
    spec = np.abs(librosa.stft(x[:20 * TARGET_SR].astype(np.float32), n_fft=1024, hop_length=512))
    if not spec.any():
        return None
    harmonic, percussive = librosa.decompose.hpss(spec, kernel_size=(17, 31))  # 0.5 s in time, 31 bins
    eh, ep = float((harmonic ** 2).sum()), float((percussive ** 2).sum())
    return eh / (eh + ep) if eh + ep > 0 else None


def measure_tone(x: np.ndarray, tolerance: float = 0.03) -> float | None:
    """Pitch (Hz) of one sustained tone: the median YIN estimate over the frames within 20 dB of the
    loudest, when at least 80 % of them stay within `tolerance` (half a semitone) of it for at least
    half a second, and the spectrum's strongest peak is a low harmonic (1-4) of it. A sweep, a melody or
    noise has no such pitch."""
    import librosa

    frame, hop = 2048, 256
    if len(x) < frame:
        return None
    f0 = librosa.yin(x.astype(np.float32), fmin=50, fmax=2000, sr=TARGET_SR, frame_length=frame, hop_length=hop)
    level = frame_db(np.pad(x, frame // 2), frame, hop)[:len(f0)]
    loud = level > level.max(initial=-120.0) - 20
    if loud.sum() * hop / TARGET_SR < 0.5:
        return None
    median = float(np.median(f0[loud]))
    if np.mean(np.abs(f0[loud] / median - 1) <= tolerance) < 0.8:
        return None
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    strongest = np.fft.rfftfreq(len(x), 1 / TARGET_SR)[int(np.argmax(spectrum))]
    harmonic = strongest / median
    if round(harmonic) not in (1, 2, 3, 4) or abs(harmonic - round(harmonic)) > tolerance * round(harmonic):
        return None
    return median


def measure_rt60(x: np.ndarray, window: int = 20, percentile: float = 5.0) -> float | None:
    """Blind reverberation time (s) from the steepest decays: a room lets no sound die away faster
    than its own decay, so the steepest falls of the level bound RT60 from below (the decay-rate
    distribution idea of Wen, Habets & Naylor, 2008). Level of 20 ms frames (10 ms hop), floored at the
    noise floor (10th percentile, at most 60 dB under the peak); a line fitted over every `window` frames
    that start within 30 dB of the peak and fall at least 5 dB; RT60 is -60 dB over the `percentile`-th
    slope. On speech convolved with rooms of 0.3 / 0.7 / 1.5 s it reads about 0.3-0.4 / 0.65 / 1.1-1.3 s
    (it underestimates long halls: a short clip rarely decays through 60 dB); dry speech reads 0.2-0.4 s."""
    level = frame_db(x, 2 * HOP, HOP)
    if level.size < window + 5:
        return None
    peak = level.max()
    level = np.maximum(level, max(np.percentile(level, 10), peak - 60))
    t = np.arange(window) * HOP / TARGET_SR
    t -= t.mean()
    segs = level[np.arange(window)[None, :] + np.arange(level.size - window + 1)[:, None]]
    segs = segs[(segs[:, 0] >= peak - 30) & (segs[:, 0] - segs[:, -1] >= 5)]
    if len(segs) < 3:
        return None
    slopes = (segs - segs.mean(axis=1, keepdims=True)) @ t / np.dot(t, t)
    steepest = float(np.percentile(slopes, percentile))
    return -60.0 / steepest if steepest < 0 else None


def measure_bandwidth(x: np.ndarray, drop_db: float = 40.0) -> float | None:
    """Effective bandwidth (Hz): the highest frequency at which the long-term spectrum (Welch, 1/3-octave
    smoothed) is within `drop_db` of its level over 300-3400 Hz (the telephone band). Telephone speech
    stops near 3.4 kHz; full-band speech at 16 kHz reaches 6-8 kHz."""
    from scipy.signal import welch

    if len(x) < 1024 or not np.any(x):
        return None
    freqs, psd = welch(x.astype(np.float64), fs=TARGET_SR, nperseg=1024)
    db = 10 * np.log10(psd + 1e-20)
    smooth = np.array([db[(freqs >= f / 2 ** (1 / 6)) & (freqs <= f * 2 ** (1 / 6))].max() if f > 0 else db[0]
                       for f in freqs])
    band = (freqs >= 300) & (freqs <= 3400)
    reference = 10 * np.log10(np.mean(psd[band]) + 1e-20)
    above = np.flatnonzero((smooth >= reference - drop_db) & (freqs >= 300))
    return float(freqs[above[-1]]) if above.size else None


def measure_dynamic_range(x: np.ndarray) -> float | None:
    """Spread of the level (dB): 95th minus 10th percentile of 50 ms frame levels, frames of digital
    silence (under -80 dBFS) left out. About 0-5 dB for steady noise or a tone, 25-45 dB for speech with
    pauses."""
    level = frame_db(x, 800, 400)
    level = level[level > -80]
    if level.size < 10:
        return None
    return float(np.percentile(level, 95) - np.percentile(level, 10))


def sound_class(m: dict) -> str | None:
    """speech (the VAD heard it), silence (under -50 dBFS), music (pitched notes that start and stop,
    or a steady beat), tone (pitched sound without attacks: a tone or a sweep), noise (flat spectrum,
    no beat); None when the measurements do not decide."""
    if m.get("is_speech"):
        return "speech"
    rms, flat, hr = m.get("rms_dbfs"), m.get("spectral_flatness"), m.get("harmonic_ratio")
    if rms is None or flat is None or hr is None:
        return None
    if rms < -50:
        return "silence"
    beat = m.get("tempo_bpm") is not None and (flat < 0.05 or hr < 0.2)  # pitched or percussive, not noise
    if beat or (hr >= 0.5 and flat < 0.05 and (m.get("onset_count") or 0) >= 2):
        return "music"
    if hr >= 0.7 and flat < 0.05:
        return "tone"
    if flat >= 0.1:
        return "noise"
    return None


class Acoustics(Analyzer):
    """Room, band and dynamics for every clip; events, beat, texture and tone only for clips without speech
    (VAD), the only ones whose leaves ask about them: a voice is neither a beat nor a tone, and skipping
    them on speech saves most of the cost (HPSS, onset strength and YIN on every clip)."""

    name = "acoustics"
    fields = {"onset_count": "events", "tempo_bpm": "BPM", "harmonic_ratio": "0 percussive .. 1 tonal",
              "tone_hz": "Hz", "rt60_s": "s", "bandwidth_hz": "Hz", "dynamic_range_db": "dB",
              "sound_class": "speech|music|tone|noise|silence"}

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        room = {"rt60_s": measure_rt60(audio), "bandwidth_hz": measure_bandwidth(audio),
                "dynamic_range_db": measure_dynamic_range(audio)}
        if item.get("is_speech"):
            return {**room, "sound_class": "speech"}
        onsets = measure_onsets(audio)
        m = {"onset_count": len(onsets), "tempo_bpm": tempo_from_onsets(onsets),
             "harmonic_ratio": measure_harmonic_ratio(audio), "tone_hz": measure_tone(audio), **room}
        return {**m, "sound_class": sound_class({**item, **m})}
