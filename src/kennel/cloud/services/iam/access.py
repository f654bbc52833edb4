"""SimulatePrincipalPolicy and service-last-accessed reports, from real policies and the audit trail."""

from __future__ import annotations

import math
import threading
import uuid

from sqlalchemy import func, select

from kennel.cloud.auth import tables as t
from kennel.cloud.policy.evaluate import AuthzRequest, Outcome, evaluate
from kennel.cloud.policy.policy import MalformedPolicyDocument, PolicyKind, parse_policy
from kennel.cloud.services.base import Context
from kennel.cloud.services.iam.common import InvalidInput, MalformedPolicy, NoSuchEntity, when

SERVICE_NAMES = {
    "sagemaker": "Amazon SageMaker",
    "lambda": "AWS Lambda",
    "iam": "AWS Identity and Access Management",
    "sts": "AWS Security Token Service",
    "logs": "Amazon CloudWatch Logs",
    "cloudwatch": "Amazon CloudWatch",
    "application-autoscaling": "Application Auto Scaling",
    "s3": "Amazon S3",
}
_EVAL_NAMES = {
    Outcome.ALLOW: "allowed",
    Outcome.EXPLICIT_DENY: "explicitDeny",
    Outcome.IMPLICIT_DENY: "implicitDeny",
}


def principal_from_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:iam::acct:user/path/name`` → ("user", "name"); roles likewise."""
    try:
        resource = arn.split(":", 5)[5]
        kind, _, rest = resource.partition("/")
    except IndexError:
        raise InvalidInput(f"ARN {arn} is not valid.") from None
    if kind not in ("user", "role") or not rest:
        raise InvalidInput(f"ARN {arn} is not a user or role ARN.")
    return kind, rest.rsplit("/", 1)[-1]


def _numeric(text: str) -> float:
    value = float(text)  # a ValueError for "x" is the caller's InvalidInput
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _context(entries: list[dict]) -> dict:
    values: dict = {}
    for entry in entries or []:
        if not entry.get("ContextKeyName"):  # optional in the model, but an entry names nothing without it
            raise InvalidInput("Every ContextEntries member needs a ContextKeyName.")
        raw = entry.get("ContextKeyValues", [])
        kind = entry.get("ContextKeyType", "string")
        convert = {"numeric": _numeric, "boolean": lambda v: v.lower() == "true"}.get(
            kind.replace("List", ""), str
        )
        try:
            converted = [convert(v) for v in raw]
        except ValueError:
            name = entry.get("ContextKeyName", "")
            raise InvalidInput(
                f"Invalid value for context key {name} of type {kind}: every value must be a number."
            ) from None
        values[entry["ContextKeyName"]] = (
            converted if kind.endswith("List") or len(converted) != 1 else converted[0]
        )
    return values


class AccessMixin:
    cloud: object
    _jobs: dict
    _jobs_lock: threading.Lock

    def simulate_principal_policy(self, params: dict, ctx: Context) -> dict:
        kind, name = principal_from_arn(params["PolicySourceArn"])
        with self.cloud.store.read() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
        found = self.cloud.identities.load_policies(kind, name)
        try:
            extra = [
                parse_policy(doc, kind=PolicyKind.IDENTITY, name=f"PolicyInputList.{i + 1}")
                for i, doc in enumerate(params.get("PolicyInputList", []))
            ]
        except MalformedPolicyDocument as exc:
            raise MalformedPolicy(str(exc)) from None
        context = _context(params.get("ContextEntries", []))
        context.setdefault("aws:username", name) if kind == "user" else None
        results = []
        for action in params["ActionNames"]:
            for resource in params.get("ResourceArns") or ["*"]:
                decision = evaluate(
                    AuthzRequest(params["PolicySourceArn"], action, resource, context),
                    [*found.identity, *extra],
                    permissions_boundary=found.boundary,
                )
                matched = []
                if decision.matched_statement is not None:
                    matched.append(
                        {
                            "SourcePolicyId": decision.matched_statement.policy_name or "",
                            "SourcePolicyType": "IAM Policy",
                        }
                    )
                results.append(
                    {
                        "EvalActionName": action,
                        "EvalResourceName": resource,
                        "EvalDecision": _EVAL_NAMES[decision.outcome],
                        "MatchedStatements": matched,
                        "MissingContextValues": [],
                    }
                )
        return {"EvaluationResults": results, "IsTruncated": False}

    def generate_service_last_accessed_details(self, params: dict, ctx: Context) -> dict:
        arn = params["Arn"]
        kind, name = principal_from_arn(arn)
        with self.cloud.store.read() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
        self.cloud.audit.flush()
        started = ctx.now.timestamp()
        report = self._last_accessed(kind, name, arn, params.get("Granularity", "SERVICE_LEVEL"))
        job_id = str(uuid.uuid4())
        with self._jobs_lock:
            self._jobs[job_id] = {
                "JobStatus": "COMPLETED",
                "JobType": params.get("Granularity", "SERVICE_LEVEL"),
                "JobCreationDate": when(started),
                "JobCompletionDate": when(self.cloud.clock()),
                "ServicesLastAccessed": report,
                "IsTruncated": False,
            }
        return {"JobId": job_id}

    def get_service_last_accessed_details(self, params: dict, ctx: Context) -> dict:
        with self._jobs_lock:
            job = self._jobs.get(params["JobId"])
        if job is None:
            raise NoSuchEntity(f"No such job {params['JobId']}.")
        return job

    def _last_accessed(self, kind: str, name: str, arn: str, granularity: str) -> list[dict]:
        policies = self.cloud.identities.load_policies(kind, name)
        granted: set[str] = set()
        for policy in policies.identity:
            for statement in policy.statements:
                if statement.is_deny:
                    continue
                actions = statement.action or ("*",)
                for action in actions:
                    prefix = action.split(":")[0].lower()
                    granted.update(SERVICE_NAMES if prefix == "*" else [prefix])
        audit = t.audit
        with self.cloud.store.read() as conn:
            rows = conn.execute(
                select(audit.c.action, func.max(audit.c.time), func.count())
                .where(audit.c.identity_arn == arn)
                .group_by(audit.c.action)
            ).all()
        by_service: dict[str, list] = {}
        for action, last, count in rows:
            by_service.setdefault(action.split(":")[0].lower(), []).append((action, last, count))
        report = []
        for namespace in sorted(granted | set(by_service)):
            entry: dict = {
                "ServiceName": SERVICE_NAMES.get(namespace, namespace),
                "ServiceNamespace": namespace,
                "TotalAuthenticatedEntities": 0,
            }
            used = by_service.get(namespace)
            if used:
                entry["LastAuthenticated"] = when(max(u[1] for u in used))
                entry["LastAuthenticatedEntity"] = arn
                entry["LastAuthenticatedRegion"] = self.cloud.settings.region
                entry["TotalAuthenticatedEntities"] = 1
                if granularity == "ACTION_LEVEL":
                    entry["TrackedActionsLastAccessed"] = [
                        {
                            "ActionName": a.split(":", 1)[1],
                            "LastAccessedEntity": arn,
                            "LastAccessedTime": when(last),
                            "LastAccessedRegion": self.cloud.settings.region,
                        }
                        for a, last, _ in sorted(used)
                    ]
            report.append(entry)
        return report
