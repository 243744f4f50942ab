#!/usr/bin/env python
"""DreamBooth benchmark of SDXL adapters (DINO, CLIP-I, CLIP-T on the 25 prompts, fixed seeds).

    python evaluate_dreambooth.py --subject_dir dog/ --adapter dash=outputs/dog --adapter lora=outputs/dog_nodash
    python evaluate_dreambooth.py --judges world --world_subject dotted_ball --subject_dir data/dotted_ball/reference --base builtin:mini-sdxl --resolution 128 --steps 25 --adapter dash=outputs/dotted_ball

Run with ``--help`` for every option; docs/evaluation.md explains the protocol. The work is done by
:func:`dash_diffusion.eval.runner.run` (with ``--judges world``, on a held-out subject of ``builtin:mini-sdxl``'s
world, by :func:`dash_diffusion.eval.world_runner.run_world`).
"""

import sys

from dash_diffusion.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
