"""The DreamBooth trainer on accelerate.

- :mod:`.train_config` / :mod:`.cli`: ``TrainConfig`` and the command line derived from it.
- :mod:`.train`: ``train(config)`` as named steps: set-up, resume, one optimizer step, end-of-step duties.
- :mod:`.feed`: per-process micro-batches and their encoded (cached) inputs.
- :mod:`.sdxl`: SDXL components, text conditioning, noise and the diffusion loss.
- :mod:`.run_file`: ``output_dir/run.toml``, every option of a run, read back by ``--config``.
- :mod:`.stop` / :mod:`.run_state`: stopping on request (``STOP`` file, SIGTERM, Ctrl-C) with a checkpoint;
  ``logs/run_state.json`` and ``logs/selection.json`` for a UI.
- :mod:`.optim`, :mod:`.checkpoint`, :mod:`.validation`, :mod:`.class_images`, :mod:`.model_card`.
"""
