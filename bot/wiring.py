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

    The launcher and predictor follow configuration: EC2 trainers (MLBOT_TRAINER_INSTANCES) or a trainer URL,
    else a local worker process; the inference Lambda (MLBOT_PREDICT_FUNCTION), else, locally, the same
    handler function called in process."""
    backend = backend or backend_for(settings)
    return Services(blobs=backend.blobs, records=backend.records, jobs=backend.jobs,
                    launcher=launcher or _launcher(settings, backend), predictor=_predictor(settings, backend),
                    limits=settings.limits, notifications=backend.notifications)


def _launcher(settings: Settings, backend: Backend) -> TrainerLauncher | None:
    if settings.trainer_instances:
        from platform_core.adapters.aws_ec2 import Ec2Launcher

        # Both waits together stay well inside the chat functions' 300 s timeout. A trainer that needs
        # longer (its first boot installs the stack) drains the queue when it comes up, so the job runs.
        return Ec2Launcher(instance_ids=settings.trainer_instances, port=settings.trainer_port,
                           client=backend.client("ec2"), start_timeout_s=120, health_timeout_s=120,
                           token=settings.trainer_token)
    if settings.trainer_url:
        from platform_core.adapters.launchers import HttpLauncher

        return HttpLauncher(settings.trainer_url, token=settings.trainer_token)
    if backend.name == "local":
        from platform_core.adapters.launchers import ProcessLauncher

        return ProcessLauncher(log_path=settings.home / "trainer.log")
    return None


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
