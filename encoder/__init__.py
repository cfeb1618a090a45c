"""Text encoding: pin text in, unit-norm float32 vectors out.

Import from the modules (`encoder.text_encoder`, `encoder.engagement`, ...): this
file stays empty so that light users (engagement data, the registry) do not import torch.
"""
