"""Emotion and attitude: what the voice conveys. Nothing measured grounds these: only an LLM writer asks."""

from dataflux.taxonomy.spec import leaf

LEAVES = [
    leaf("emotion_attitude > emotion > basic_emotion > emotion_category",
         "happy, sad, angry, fearful, surprised or neutral",
         rules=("Emotion needs audible evidence in the voice (pitch movement, energy, voice quality), not only in "
                "the words.",
                "Synthetic or read speech with flat prosody is \"neutral\" unless the description says otherwise.")),
    leaf("emotion_attitude > attitude > stance > confidence_and_politeness",
         "confident, hesitant, polite, sarcastic, ..."),
]
