#!/usr/bin/env python
"""DreamBooth LoRA-Dash training of SDXL.

    accelerate launch train_dreambooth_dash.py --instance_dir dog/ --output_dir outputs/dog

Every run writes ``outputs/dog/run.toml``; ``--config outputs/dog/run.toml`` repeats it (flags given
override the file). A ``STOP`` file in the output folder, SIGTERM or Ctrl-C stops the run after the
current step with a checkpoint (exit status 0); ``--resume_from_checkpoint latest`` continues it.

Run with ``--help`` for every option. The work is done by :func:`dash_diffusion.training.train.train`.
"""

import sys

from dash_diffusion.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
