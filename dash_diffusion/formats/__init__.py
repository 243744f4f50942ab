"""Adapter files: the diffusers, kohya/SGM and native LoRA-Dash layouts, their loaders and checks.

- :mod:`.export`: fold each layer into a LoRA of rank r + s and write the three files.
- :mod:`.native`: read the native file back into LoRA-Dash layers.
- :mod:`.lora_files`: inspect any LoRA file (layout, rank, components) with one-line errors.
- :mod:`.sgm_names`: kohya/SGM module names of the SDXL UNet and canonical CLIP paths.
- :mod:`.safetensors_io`: atomic safetensors writes and checked reads.
- :mod:`.pipeline_adapters`: apply adapter files with weights to a stock diffusers pipeline.
"""
