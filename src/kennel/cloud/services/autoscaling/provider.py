"""The Application Auto Scaling provider (``application-autoscaling``, JSON 1.1, AnyScaleFrontendService).

Operations live in mixins by resource: targets, policies, scheduled actions, activities; ``controller.py``
is the per-target step of the control loop (``kennel.runtime.autoscaling.loop``), which starts with the
provider and stops with it. Each tick first has CloudWatch evaluate its alarms, then steps every target.

Kennel scales SageMaker endpoint variants (``sagemaker:variant:DesiredInstanceCount``) and acts on them
through SageMaker's own API (``sagemaker.py``). IAM: every operation is authorised on ``*`` — Application
Auto Scaling has limited resource-level permissions, and policies written for it use ``"Resource": "*"``.
"""

from __future__ import annotations

import logging
import time

from kennel.cloud.services.autoscaling.activities import ActivitiesMixin
from kennel.cloud.services.autoscaling.controller import ControllerMixin
from kennel.cloud.services.autoscaling.policies import PoliciesMixin
from kennel.cloud.services.autoscaling.sagemaker import SageMakerVariants
from kennel.cloud.services.autoscaling.scheduled import ScheduledMixin
from kennel.cloud.services.autoscaling.targets import TargetsMixin
from kennel.cloud.services.base import Context, Provider
from kennel.runtime.loop import ControlLoop

log = logging.getLogger("kennel.autoscaling")


class ApplicationAutoScalingProvider(
    ControllerMixin, TargetsMixin, PoliciesMixin, ScheduledMixin, ActivitiesMixin, Provider
):
    service = "application-autoscaling"

    def __init__(self, cloud, *, clock=time.time) -> None:
        super().__init__(cloud)
        self.clock = clock
        self.variants = SageMakerVariants(cloud)
        scale = cloud.settings.time_scale_s
        self.time_factor = scale / 60.0
        self.init_controller()
        # A tick every eighth of a simulated minute (at most a second): decisions follow a completed
        # period quickly, and activities see their endpoint become InService within a tick.
        self.loop = ControlLoop(
            self.scalable_keys,
            self.step_target,
            interval_s=min(1.0, max(0.1, scale / 8)),
            prepare=self._evaluate_alarms,
            clock=clock,
            name="kennel-autoscaler",
        )

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        return "*"

    def _evaluate_alarms(self, now: float) -> None:
        self.cloud.alarms.evaluate_alarms(now)

    def start(self) -> None:
        self.loop.start()

    def close(self) -> None:
        self.loop.stop()
