"""The Application Auto Scaling provider (``application-autoscaling``, JSON 1.1, AnyScaleFrontendService).

Operations live in mixins by resource: targets, policies, scheduled actions, activities. The provider
owns the ``ScalingController`` (``controller.py``, the per-target step of the control loop of
``kennel.runtime.autoscaling.loop``) and the ``ActivityLog`` it records through; the loop starts with the
provider and stops with it. Each tick first has CloudWatch evaluate its alarms, then steps every target.

Kennel scales SageMaker endpoint variants (``sagemaker:variant:DesiredInstanceCount``) and acts on them
through SageMaker's own API (``sagemaker.py``). IAM: every operation is authorised on ``*`` — Application
Auto Scaling has limited resource-level permissions, and policies written for it use ``"Resource": "*"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kennel.cloud.services.autoscaling.activities import ActivitiesMixin, ActivityLog
from kennel.cloud.services.autoscaling.common import Key
from kennel.cloud.services.autoscaling.controller import ScalingController
from kennel.cloud.services.autoscaling.policies import ScalingPoliciesMixin
from kennel.cloud.services.autoscaling.sagemaker import SageMakerVariants
from kennel.cloud.services.autoscaling.scheduled import ScheduledMixin
from kennel.cloud.services.autoscaling.targets import TargetsMixin
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.ports import ProviderDeps
from kennel.runtime.loop import ControlLoop

log = logging.getLogger("kennel.autoscaling")


class ApplicationAutoScalingProvider(
    TargetsMixin, ScalingPoliciesMixin, ScheduledMixin, ActivitiesMixin, Provider
):
    service = "application-autoscaling"

    def __init__(self, cloud: ProviderDeps, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(cloud)
        self.variants = SageMakerVariants(cloud)
        scale = cloud.settings.time_scale_s
        self.activities = ActivityLog(cloud.store, clock)
        # CloudWatch comes before this provider in the registry's start-up order, so its alarm book
        # exists by now.
        self.controller = ScalingController(
            cloud.store, self.variants, cloud.alarms, self.activities, time_factor=scale / 60.0
        )
        # A tick every eighth of a simulated minute (at most a second): decisions follow a completed
        # period quickly, and activities see their endpoint become InService within a tick.
        self.loop = ControlLoop(
            self.controller.scalable_keys,
            self.controller.step_target,
            interval_s=min(1.0, max(0.1, scale / 8)),
            prepare=self.controller.prepare,
            clock=clock,
            name="kennel-autoscaler",
        )

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        return "*"

    def forget_target(self, key: Key) -> None:
        """A deregistered target: the controller drops what it remembers of it."""
        self.controller.forget_target(key)

    def start(self) -> None:
        self.loop.start()

    def close(self) -> None:
        self.loop.stop()
