#!/usr/bin/env python
"""DreamBooth LoRA-Dash training of SDXL.

    accelerate launch train_dreambooth_dash.py --instance_dir dog/ --output_dir outputs/dog

Run with ``--help`` for every option. The work is done by :func:`dash_diffusion.training.train.train`.
"""

import sys

from dash_diffusion.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
