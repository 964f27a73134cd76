"""The inference Lambda: onnxruntime, numpy, Pillow and tokenizers; never torch.

``handler.handler`` is the Lambda entry point; ``handler.answer`` is the same function for in-process
callers; ``predictor.Predictor`` loads and caches the stored models.
"""
