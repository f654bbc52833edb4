"""The Lambda provider: operations in mixins by resource; this class wires the runtime and names ARNs.

Compute lives in ``kennel.runtime.functions``: the provider hands it function specs built from the
store, temporary credentials of each function's execution role (so code inside the function calls
Kennel as that role), and sinks that reach CloudWatch Logs and CloudWatch once those services run.
"""

from __future__ import annotations

import logging
import shutil

from kennel.cloud.errors import AwsError
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_.aliases import AliasesMixin
from kennel.cloud.services.lambda_.codestore import CodeStore
from kennel.cloud.services.lambda_.concurrency import ConcurrencyMixin
from kennel.cloud.services.lambda_.functions import FunctionsMixin
from kennel.cloud.services.lambda_.invoke import InvokeMixin
from kennel.cloud.services.lambda_.journal import StoreJournal
from kennel.cloud.services.lambda_.permissions import PermissionsMixin
from kennel.cloud.services.service_roles import LAMBDA
from kennel.runtime.functions.emitter import Emitter
from kennel.runtime.functions.environment import FunctionSpec
from kennel.runtime.functions.events import EventQueue
from kennel.runtime.functions.pool import FunctionRuntime

log = logging.getLogger("kennel.lambda")

IDLE_MINUTES = 10  # simulated minutes an on-demand environment stays warm without work
CREDENTIAL_LIFETIME_S = 12 * 3600  # environments are recycled after 4 h, well within this

# Operations whose IAM resource is the unqualified function even when a qualifier is involved.
_UNQUALIFIED = frozenset(
    {
        "CreateFunction", "PublishVersion", "ListVersionsByFunction", "CreateAlias", "GetAlias",
        "UpdateAlias", "DeleteAlias", "ListAliases", "PutFunctionConcurrency", "GetFunctionConcurrency",
        "DeleteFunctionConcurrency", "ListProvisionedConcurrencyConfigs", "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
    }
)  # fmt: skip


class LambdaProvider(FunctionsMixin, AliasesMixin, ConcurrencyMixin, PermissionsMixin, InvokeMixin, Provider):
    service = "lambda"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        settings = cloud.settings
        self.region = settings.region
        self.account = settings.account_id
        self.root = settings.state_dir / "lambda"
        self.code = CodeStore(self.root / "code")
        self.emitter: Emitter | None = None
        self._invoke_cache: dict = {}
        self.runtime: FunctionRuntime
        self.events: EventQueue

    def start(self) -> None:
        settings = self.cloud.settings
        scratch = self.root / "environments"
        shutil.rmtree(scratch, ignore_errors=True)  # directories of environments a crash left behind
        self.emitter = Emitter(self.cloud.logs, self.cloud.metrics)  # every provider exists by start()
        self.runtime = FunctionRuntime(
            scratch,
            self._credentials,
            self.emitter,
            sandbox=self.cloud.sandbox,
            account_limit=settings.lambda_concurrency_limit,
            idle_timeout_s=IDLE_MINUTES * settings.time_scale_s,
        )
        self.events = EventQueue(
            self._run_event, self._retry_policy, minute_s=settings.time_scale_s,
            journal=StoreJournal(self.cloud.store),
        )  # fmt: skip
        self._restore_provisioned()

    def close(self) -> None:
        if self.emitter is None:
            return
        self.events.close()
        self.runtime.close()
        self.emitter.flush(2.0)
        self.emitter.close()

    def _credentials(self, spec: FunctionSpec) -> dict:
        """Temporary credentials of the execution role, session named after the function, as on AWS."""
        role = self.cloud.service_roles.assumable(
            spec.role_arn, "lambda.amazonaws.com", spec.function_arn, errors=LAMBDA
        )
        return self.cloud.sts.issue(role, spec.name, spec.function_arn, CREDENTIAL_LIFETIME_S)

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        if "FunctionName" not in params:
            return "*"
        try:
            name, qualifier = m.split_name(params["FunctionName"], params.get("Qualifier"), self.account)
        except AwsError:
            return "*"  # the operation itself reports the bad name
        return self._arn(name, None if operation in _UNQUALIFIED else qualifier)
