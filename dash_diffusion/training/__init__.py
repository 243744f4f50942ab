"""The DreamBooth trainer on accelerate.

- :mod:`.train_config` / :mod:`.cli`: ``TrainConfig`` and the command line derived from it.
- :mod:`.train`: ``train(config)`` as named steps: set-up, resume, one optimizer step, end-of-step duties.
- :mod:`.feed`: per-process micro-batches and their encoded (cached) inputs.
- :mod:`.sdxl`: SDXL components, text conditioning, noise and the diffusion loss.
- :mod:`.optim`, :mod:`.checkpoint`, :mod:`.validation`, :mod:`.class_images`, :mod:`.model_card`.
"""
