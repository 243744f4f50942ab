"""Built-in models for working offline: the random ``builtin:tiny-sdxl`` (:mod:`.tiny`)."""
