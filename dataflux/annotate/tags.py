"""Bin measured values into tags. Thresholds live in config; the defaults and their sources:

- pitch, relative to the speaker's gender: typical adult speaking F0 is about 85-155 Hz for men and
  165-255 Hz for women (Titze, *Principles of Voice Production*, 1994; Baken & Orlikoff, 2000).
  "low" / "high" are the lower and upper parts of those ranges.
- speaking rate, in syllables per second (more stable across sentences than words per second, whose
  value depends on word length): conversational English runs at about 4-6 syllables/s, ~5 on average
  (Laver, *Principles of Phonetics*, 1994; Pellegrino et al., *Language* 2011). Below 3.5 is slow,
  above 6.5 is fast. Measured from the first word's start to the last word's end.
- loudness: EBU R128 targets -23 LUFS for programme loudness; more than 6 LU below is quiet, more
  than 6 LU above is loud.
- quality: DNSMOS BAK (background) below 3.0, or SNR under 15 dB, is noisy (DNSMOS P.835 scale:
  3 = "noticeable but not intrusive" background).
- clipping: more than 0.1 % of samples at full scale.
"""

from __future__ import annotations

import numpy as np

from dataflux.annotate.base import Analyzer
from dataflux.settings import Section
from dataflux.taxonomy import bin_tags


class TagThresholds(Section):
    pitch_male_hz: tuple[float, float] = (95.0, 135.0)  # low below, high above
    pitch_female_hz: tuple[float, float] = (180.0, 240.0)
    rate_sps: tuple[float, float] = (3.5, 6.5)
    loudness_lufs: tuple[float, float] = (-29.0, -17.0)
    noisy_bak_below: float = 3.0
    noisy_snr_below_db: float = 15.0
    clipped_ratio_above: float = 0.001
    duration_s: tuple[float, float] = (3.0, 10.0)
    tonal_flatness_below: float = 0.05  # spectral flatness of a tone or music
    noise_flatness_above: float = 0.3
    tempo_bpm: tuple[float, float] = (100.0, 140.0)  # slow below, fast above
    harmonic_ratio: tuple[float, float] = (0.35, 0.65)  # percussive below, tonal above
    tone_hz: tuple[float, float] = (250.0, 700.0)
    rt60_s: tuple[float, float] = (0.45, 0.9)  # dry below, hall above (blind estimate)
    narrowband_below_hz: float = 5000.0  # telephone speech measures ~4.1-4.3 kHz, full band ~8 kHz
    dynamic_range_db: float = 15.0  # steady noise, tones, music 0-14 dB; speech with pauses 19-46 dB


class Tagger(Analyzer):
    name = "tags"
    fields = {"tag_content": "", "tag_pitch": "", "tag_rate": "", "tag_loudness": "", "tag_quality": "",
              "tag_clipping": "", "tag_duration": "", "tag_speakers": "", "tag_timbre": "",
              "tag_sound": "", "tag_tempo": "", "tag_texture": "", "tag_tone": "", "tag_events": "", "tag_reverb": "",
              "tag_bandwidth": "", "tag_dynamics": ""}

    def __init__(self, thresholds: TagThresholds = TagThresholds(), resources=None):
        super().__init__(resources)
        self.t = thresholds

    def analyze(self, audio: np.ndarray, item: dict) -> dict:
        return bin_tags(item, self.t)  # the bins are the taxonomy leaves' (the verifier bins with them too)
