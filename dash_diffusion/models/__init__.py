"""Built-in models for working offline: the random ``builtin:tiny-sdxl`` (:mod:`.tiny`), the procedural
world (:mod:`.world`) and the small SDXL pretrained on it (:mod:`.mini`)."""
