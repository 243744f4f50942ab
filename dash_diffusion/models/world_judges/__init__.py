"""Judges for the procedural world: small CNNs that score generated pictures of it.

DreamBooth's protocol scores a fine-tuned model with CLIP (does the picture match the prompt?) and
DINO (is it the same subject as the reference photos?). For ``builtin:mini-sdxl`` and its world
(:mod:`dash_diffusion.models.world`) the project trains its own judges on renders whose labels it
knows: :meth:`Judges.classify` names the object, scene and colour of a picture, :meth:`Judges.embed`
gives an instance embedding and :func:`instance_similarity` the mean cosine between two sets of
pictures. The trained weights ship in ``weights/judges.safetensors``; retrain them with
``python -m dash_diffusion.models.world_judges.train --out <file>``.
"""

from .judge import DEFAULT_WEIGHTS, Judges, instance_similarity, load_judges

__all__ = ["DEFAULT_WEIGHTS", "Judges", "instance_similarity", "load_judges"]
