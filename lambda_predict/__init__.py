"""The inference Lambda: onnxruntime, numpy, Pillow and tokenizers; never torch.

Prediction arrives with issue 4; this package exists so the layout and its import rules hold from the start.
"""
