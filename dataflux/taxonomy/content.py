"""Content: what is said (language, topic, keywords)."""

from dataflux.languages import LANGUAGE_NAMES
from dataflux.taxonomy.spec import Label, leaf


def confident_language(a: dict) -> bool:
    """Whisper's language guess is a fact to ask about only when it is sure of it."""
    return (a.get("language_prob") or 0) >= 0.7


LEAVES = [
    leaf("content > language > spoken_language > language_identity", "which language is spoken",
         grounded_by=["language"], tag="language", speech_only=True, ask=confident_language,
         labels={code: Label(name, (rf"\b{name.lower()}\b",)) for code, name in LANGUAGE_NAMES.items()},
         max_distractors=3,  # the most common other languages (LANGUAGE_NAMES lists them first)
         questions=("Which language is spoken?", "What language do you hear?"),
         rules=("The language is the language of the spoken words; a foreign name inside an English sentence does "
                "not make it foreign.",),
         evidence=("The words are clearly recognisable English words",)),
    leaf("content > topic > subject > topic_category", "what the speech is about"),
    leaf("content > keywords > lexical > keyword_presence", "whether particular words or numbers are said",
         rules=("Keyword questions must be answerable from the spoken words themselves.",)),
]
