"""The EC2 trainer: a thin Flask app (app, wsgi) and a queue worker (worker) over the job runner (runner), and
the training library they run: image recipes (image_training, image_recipes) and text recipes (text_training,
text_encoder, text_lstm) sharing one epoch loop and evaluation (loop), one ONNX export and check
(onnx_export) and one way to a stored result (results).
"""
