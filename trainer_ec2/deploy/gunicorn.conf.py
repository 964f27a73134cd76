"""gunicorn settings for the EC2 trainer (loopback only: nothing reaches it from outside the instance)."""
# One worker process: training runs in its background thread under the MachineStatus lock; threads
# keep /health and /predict_* answering while a model trains.
bind = "127.0.0.1:8000"
workers = 1
threads = 4
timeout = 120
# On SIGTERM (the instance stopping) the worker has this long to hand a running job back; systemd's
# TimeoutStopSec (mlbot-trainer.service) is longer, so gunicorn, not SIGKILL, ends it.
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
