"""ASR benchmarks in their published layouts. Scored as corpus WER after Whisper's normaliser (English
with its spelling mapping), CER for Mandarin (`dataflux.wer`)."""

from __future__ import annotations

import csv
from pathlib import Path

from model.benchmarks.common import SAMPLE_RATE, LayoutError, read_audio
from model.data import ASR_SYSTEM, Sample

ASR_PROMPT = "Transcribe the audio."

LIBRISPEECH = ("LibriSpeech (OpenSLR 12, e.g. test-clean): SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt, one "
               "'UTTERANCE-ID TRANSCRIPT' line each, with UTTERANCE-ID.flac beside it")
FLEURS = ("FLEURS (google/fleurs) one language folder, e.g. en_us/: SPLIT.tsv (tab-separated, no header: id, "
          "file name, raw transcription, transcription, characters, samples, gender) and audio/SPLIT/FILE.wav")
KALDI = ("a Kaldi data folder (AISHELL-2 and WenetSpeech test sets as their recipes prepare them): wav.scp "
         "('UTTERANCE-ID PATH' lines, no pipes) and text or trans.txt ('UTTERANCE-ID TRANSCRIPT' lines); with a "
         "segments file ('UTTERANCE-ID RECORDING-ID START END' lines, seconds, END -1 for the recording's end), "
         "wav.scp names recordings instead and each utterance is cut from its recording")

# FLEURS folder names are locales; the normaliser and WER/CER choice want a language code.
FLEURS_LANGUAGES = {"cmn_hans_cn": "zh", "yue_hant_hk": "zh", "ja_jp": "ja", "th_th": "th"}


def _sample(sid: str, wave, text: str, language: str, benchmark: str, category: str = "") -> Sample:
    return Sample(sid, sid, wave, ASR_PROMPT, None, ASR_SYSTEM, category, "asr",
                  {"reference": text, "language": language, "benchmark": benchmark})


def read_librispeech(path: str, **_) -> list[Sample]:
    root = Path(path)
    transcripts = sorted(root.glob("*/*/*.trans.txt")) or sorted(root.glob("*/*/*/*.trans.txt"))
    if not transcripts:
        raise LayoutError("librispeech", root, LIBRISPEECH, "no */*/*.trans.txt")
    samples = []
    for trans in transcripts:
        for line in trans.read_text().splitlines():
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            flac = trans.parent / f"{utt}.flac"
            if not flac.exists():
                raise LayoutError("librispeech", root, LIBRISPEECH, f"{trans.name} names {utt} but {flac} is missing")
            samples.append(_sample(utt, read_audio(flac), text, "en", "librispeech", trans.parent.parent.name))
    return samples


def read_fleurs(path: str, split: str = "test", language: str | None = None, **_) -> list[Sample]:
    root = Path(path)
    tsv = root / f"{split}.tsv"
    if not tsv.exists():
        raise LayoutError("fleurs", root, FLEURS, f"no {split}.tsv")
    language = language or FLEURS_LANGUAGES.get(root.name, root.name.split("_")[0])
    samples = []
    with open(tsv, newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) != 7:
                raise LayoutError("fleurs", root, FLEURS, f"{tsv.name} line {n} has {len(row)} columns")
            fid, name, raw, _normalised, _chars, _n, _gender = row
            audio = root / "audio" / split / name
            if not audio.exists():
                raise LayoutError("fleurs", root, FLEURS, f"{audio} is missing")
            # the raw transcription, normalised by Whisper's normaliser as the published WERs are
            samples.append(_sample(f"{fid}:{Path(name).stem}", read_audio(audio), raw, language, "fleurs"))
    return samples


def _kaldi_table(file: Path) -> dict[str, str]:
    """'KEY VALUE' lines, split at the first run of white space (space or tab)."""
    table = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, *value = line.strip().split(maxsplit=1)
            table[key] = value[0] if value else ""
    return table


def read_kaldi(path: str, language: str = "zh", **_) -> list[Sample]:
    root = Path(path)
    text = next((root / n for n in ("text", "trans.txt") if (root / n).exists()), None)
    if not (root / "wav.scp").exists() or text is None:
        found = ", ".join(sorted(p.name for p in root.iterdir())) if root.is_dir() else "no such folder"
        raise LayoutError("kaldi", root, KALDI, found)
    wavs, texts = _kaldi_table(root / "wav.scp"), _kaldi_table(text)
    segments = _kaldi_segments(root) if (root / "segments").exists() else None

    def audio_path(key: str) -> Path:
        location = wavs[key]
        if location.endswith("|"):
            raise LayoutError("kaldi", root, KALDI, f"{key} is a command pipe; extract the audio to files first")
        return Path(location) if Path(location).is_absolute() else root / location

    if segments is None:
        samples = []
        for utt, ref in texts.items():
            if utt not in wavs:
                raise LayoutError("kaldi", root, KALDI, f"{text.name} has {utt}, wav.scp does not")
            samples.append(_sample(utt, read_audio(audio_path(utt)), ref, language, "kaldi"))
        return samples
    by_recording: dict[str, list[str]] = {}
    for utt in texts:
        if utt not in segments:
            raise LayoutError("kaldi", root, KALDI, f"{text.name} has {utt}, segments does not")
        rec = segments[utt][0]
        if rec not in wavs:
            raise LayoutError("kaldi", root, KALDI, f"segments cuts {utt} from recording {rec}, which wav.scp "
                                                    "does not list")
        by_recording.setdefault(rec, []).append(utt)
    waves = {}
    for rec, utts in by_recording.items():  # each recording decoded once, its utterances cut from it
        wave = read_audio(audio_path(rec))
        for utt in utts:
            _, start, end = segments[utt]
            first = round(start * SAMPLE_RATE)
            last = len(wave) if end < 0 else min(len(wave), round(end * SAMPLE_RATE))
            if first >= last:
                raise LayoutError("kaldi", root, KALDI, f"segment {utt} ({start}-{end} s) lies outside recording "
                                                        f"{rec} ({len(wave) / SAMPLE_RATE:.2f} s)")
            waves[utt] = wave[first:last].copy()
    return [_sample(utt, waves[utt], ref, language, "kaldi") for utt, ref in texts.items()]


def _kaldi_segments(root: Path) -> dict[str, tuple[str, float, float]]:
    segments = {}
    for n, line in enumerate((root / "segments").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            utt, rec, start, end = fields
            segments[utt] = (rec, float(start), float(end))
        except ValueError:
            raise LayoutError("kaldi", root, KALDI, f"segments line {n} is not 'UTTERANCE-ID RECORDING-ID START "
                                                    f"END': {line.strip()!r}") from None
    return segments
