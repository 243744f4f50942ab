#!/usr/bin/env python
"""DreamBooth benchmark of SDXL adapters (DINO, CLIP-I, CLIP-T on the 25 prompts, fixed seeds).

    python evaluate_dreambooth.py --subject_dir dog/ --adapter dash=outputs/dog --adapter lora=outputs/dog_nodash

Run with ``--help`` for every option; docs/evaluation.md explains the protocol. The work is done by
:func:`dash_diffusion.eval.runner.run`.
"""

import sys

from dash_diffusion.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
