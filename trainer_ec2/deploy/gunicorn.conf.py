"""gunicorn settings for the EC2 trainer (behind nginx)."""
# One worker process: training runs in its background thread under the MachineStatus lock; threads
# keep /health and /predict_* answering while a model trains.
bind = "127.0.0.1:8000"
workers = 1
threads = 4
timeout = 120
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
