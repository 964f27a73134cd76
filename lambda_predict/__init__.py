"""The inference Lambda: onnxruntime, numpy, Pillow and tokenizers; never torch.

``handler.handler`` is the Lambda entry point; ``handler.answer`` is the same function for in-process
callers; ``predictor.Predictor`` loads and caches the stored models.

Shared by design with two other deployables, so that a prediction is computed by one piece of code
everywhere: the trainer's `/predict_*` routes (trainer_ec2.app) and the local backend's in-process
predictions (bot.wiring) import ``answer``, ``Predictor`` and ``InProcessPredictions``. A change here
reaches the inference Lambda, the EC2 trainer and `mlbot`/`mlbot serve`; its tests (test_predict_handler,
test_predict_real_models, test_package) cover all three. Keep it free of torch and of chat SDKs.
"""
