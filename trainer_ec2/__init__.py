"""The EC2 trainer: a thin Flask app over a training library (images, text) and ONNX export.

Training arrives with issue 3; this package exists so the layout and its import rules hold from the start.
"""
