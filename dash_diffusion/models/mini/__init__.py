"""``builtin:mini-sdxl``: a small SDXL (:mod:`.architecture`) pretrained by this project on its procedural
world (:mod:`dash_diffusion.models.world`) with :mod:`.pretrain`; its tokenizer (:mod:`.tokenizer`) makes
every word of the world one token."""
