"""Acoustic scene: where the recording was made. Nothing measured grounds a scene label: only a model
writer or listener asks (the room's reverberation, which is measured, is under environment_quality)."""

from dataflux.taxonomy.spec import leaf

LEAVES = [
    leaf("acoustic_scene > place > location > scene_category",
         "where it was recorded (street, office, home, park, vehicle, restaurant, ...)",
         rules=("A scene needs audible evidence (traffic, crowd, birds, engine hum), not a guess from the words.",)),
    leaf("acoustic_scene > place > setting > indoor_or_outdoor", "whether it was recorded indoors or outdoors"),
]
