"""Names of the languages the pipeline asks about, by ISO 639-1 code (Whisper's codes).

The order is the order distractors are drawn in (the language leaf, `taxonomy/content.py`)."""

LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese"}
