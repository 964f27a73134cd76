"""The trainer fleet on EC2 Auto Scaling (AWS adapter): the submit path's scale-out, a worker's scale-in
protection while it trains, and the launch lifecycle hook a trainer completes once its service answers.

The group (template.yaml TrainerGroup) scales from zero and keeps a warm pool of stopped, set-up instances,
so "start the stopped trainer" is the engine's work; this module only asks for capacity.
"""
from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from platform_core.adapters.aws import LazyClient
from platform_core.errors import TrainerUnavailable
from platform_core.jobs import Job
from platform_core.ports import TrainingQueue
from platform_core.scheduling import desired_capacity

log = logging.getLogger(__name__)


class AutoScalingLauncher:
    """TrainerLauncher of the AWS backend: raises the pool's group to as many trainers as the queue has jobs
    waiting or training (its tickets), bounded by the group's MaxSize; never lowers it."""

    def __init__(self, *, group: str, queue: TrainingQueue, client: Any = None) -> None:
        self.group = group
        self._queue = queue
        self._autoscaling = LazyClient("autoscaling", client)

    def __call__(self, job: Job | None = None) -> bool:
        """Scale for the queue; True while no trainer is in service for the waiting jobs (one is starting)."""
        desired, in_service, needed = self.scale()
        return in_service < min(needed, desired)

    def scale(self) -> tuple[int, int, int]:
        """(desired capacity now, trainers in service, jobs waiting or training)."""
        try:
            needed = self._queue.depth().total
            described = self._autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
            groups = described.get("AutoScalingGroups", [])
            if not groups:
                raise TrainerUnavailable(f"the trainer group {self.group} does not exist; redeploy the stack")
            group = groups[0]
            current, max_size = int(group["DesiredCapacity"]), int(group["MaxSize"])
            in_service = sum(1 for i in group.get("Instances", []) if i.get("LifecycleState") == "InService")
            desired = desired_capacity(current=current, needed=needed, max_size=max_size)
            if desired > current:
                log.info("trainers %s: %d -> %d for %d job(s)", self.group, current, desired, needed,
                         extra={"group": self.group, "desired": desired, "needed": needed})
                self._autoscaling().set_desired_capacity(AutoScalingGroupName=self.group,
                                                         DesiredCapacity=desired, HonorCooldown=False)
        except (ClientError, BotoCoreError) as exc:  # throttled, no permission: the alarm policy is the backstop
            raise TrainerUnavailable(f"could not scale {self.group}: {exc}") from exc
        return desired, in_service, needed


class ScaleInProtection:
    """A worker's hold on its own instance: scale-in never terminates (or returns to the warm pool) an
    instance that is training."""

    def __init__(self, *, group: str, instance_id: str, client: Any = None) -> None:
        self.group, self.instance_id = group, instance_id
        self._autoscaling = LazyClient("autoscaling", client)

    def __call__(self, protect: bool) -> None:
        try:
            self._autoscaling().set_instance_protection(InstanceIds=[self.instance_id],
                                                        AutoScalingGroupName=self.group,
                                                        ProtectedFromScaleIn=protect)
        except (ClientError, BotoCoreError):  # never fails a job; the lease still recovers a lost one
            log.warning("could not set scale-in protection=%s on %s", protect, self.instance_id, exc_info=True)


class LaunchHook:
    """The group's launch lifecycle hook for one instance: CONTINUE once the trainer answers /health (or it
    was prepared for the warm pool), ABANDON when set-up failed (the group replaces the instance)."""

    def __init__(self, *, group: str, hook: str, instance_id: str, client: Any = None) -> None:
        self.group, self.hook, self.instance_id = group, hook, instance_id
        self._autoscaling = LazyClient("autoscaling", client)

    def complete(self, result: str) -> bool:
        """Answer the hook; False when no launch is waiting for it (a manual reboot, a restart of the service)."""
        if result not in ("CONTINUE", "ABANDON"):
            raise ValueError(result)
        try:
            self._autoscaling().complete_lifecycle_action(
                LifecycleHookName=self.hook, AutoScalingGroupName=self.group, InstanceId=self.instance_id,
                LifecycleActionResult=result)
        except ClientError as exc:
            log.warning("no launch lifecycle action to complete for %s (%s): %s", self.instance_id, result,
                        exc.response.get("Error", {}).get("Message", exc))
            return False
        return True
