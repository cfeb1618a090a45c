"""Text encoding: pin text in, unit-norm float32 vectors out.

Import from the modules (`encoder.text_encoder`, `encoder.pin_text`, ...): this
file stays empty so that light users (the parse stage) do not import torch.
"""
