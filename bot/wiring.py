"""The chat side's one wiring function: the use cases' dependencies from settings, over one backend."""
from __future__ import annotations

from typing import Mapping

from handlers.services import Services
from platform_core.ports import TrainerLauncher
from platform_core.backend import Backend, backend_for
from platform_core.config import Settings


def build_services(settings: Settings, *, launcher: TrainerLauncher | None = None,
                   backend: Backend | None = None) -> Services:
    """Services over ``backend`` (default: the one settings name), sharing its clients and stores.

    The launcher and predictor follow configuration: on AWS the trainer groups' scale-out
    (MLBOT_TRAINER_GROUP), locally a worker process; the inference Lambda (MLBOT_PREDICT_FUNCTION), else,
    locally, the same handler function called in process."""
    backend = backend or backend_for(settings)
    return Services(blobs=backend.blobs, records=backend.records, jobs=backend.jobs, queues=backend.queues,
                    launcher=launcher or _launcher(settings, backend), predictor=_predictor(settings, backend),
                    limits=settings.limits, notifications=backend.notifications)


def _launcher(settings: Settings, backend: Backend) -> TrainerLauncher | None:
    if backend.name == "aws":
        if not settings.trainer_groups:
            return None
        return fleet_launcher(settings, backend)
    from platform_core.adapters.launchers import ProcessLauncher

    return ProcessLauncher(log_path=settings.home / "trainer.log")


def fleet_launcher(settings: Settings, backend: Backend) -> TrainerLauncher:
    """Scale-out for the pool each job goes to: its queue's depth against its Auto Scaling group."""
    return lambda job: backend.scaler(job.pool)(job)


def _predictor(settings: Settings, backend: Backend):
    if settings.predict_function:
        from platform_core.adapters.aws_predict import LambdaPredictions

        return LambdaPredictions(function=settings.predict_function, blobs=backend.blobs,
                                 client=backend.client("lambda"))
    if backend.name == "local":  # the inference Lambda's own handler function, called in process
        from lambda_predict.handler import InProcessPredictions
        from lambda_predict.predictor import Predictor

        return InProcessPredictions(Predictor(blobs=backend.blobs, records=backend.records), backend.blobs)
    return None


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for a deployed function: the environment plus its secrets (platform_core.adapters.aws_secrets;
    imported here only when called, so importing the wiring does not load boto3)."""
    from platform_core.adapters.aws_secrets import settings_from_env as from_env_and_secrets

    return from_env_and_secrets(env)
