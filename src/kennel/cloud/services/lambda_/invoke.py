"""Invoke (RequestResponse, Event, DryRun), the deprecated InvokeAsync, and event invoke configs.

The gateway authorises them as AWS does: action ``lambda:InvokeFunction`` (``iam_action``), on the ARN
exactly as the caller named it (qualified when a qualifier is given), together with that ARN's function
policy (``resource_policies``).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time

from sqlalchemy import delete, select

from kennel.cloud.errors import AwsError
from kennel.cloud.services.base import Context
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_ import tables as t
from kennel.runtime.functions import reports
from kennel.runtime.functions.admission import THROTTLE_MESSAGE
from kennel.runtime.functions.environment import FunctionSpec
from kennel.runtime.functions.events import Event, Result, RetryPolicy
from kennel.runtime.functions.pool import Invocation, Throttled

INVOKE_ACTION = "lambda:InvokeFunction"


class InvokeMixin:
    cloud: object

    def iam_action(self, operation: str) -> str | None:
        return INVOKE_ACTION if operation in ("Invoke", "InvokeAsync") else None

    def resource_policies(self, operation: str, params: dict) -> list:
        if operation not in ("Invoke", "InvokeAsync"):
            return []
        try:
            name, qualifier = m.split_name(params["FunctionName"], params.get("Qualifier"), self.account)
        except AwsError:
            return []  # the operation itself reports the bad name
        return self._cached("policy", name, qualifier, self.function_policies)

    def _cached(self, kind: str, name: str, qualifier: str | None, compute):
        """``compute(name, qualifier)``, remembered until the store's next committed write.

        Invoke is the hot path: this keeps its two store reads (policy, version) off warm invocations.
        """
        generation = self.cloud.store.generation
        key = (kind, name, qualifier)
        hit = self._invoke_cache.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        value = compute(name, qualifier)
        if len(self._invoke_cache) > 4096:
            self._invoke_cache.clear()
        self._invoke_cache[key] = (generation, value)
        return value

    def _target(self, name: str, qualifier: str | None) -> tuple[FunctionSpec, str]:
        """(spec, executed version) for an invocation of ``name[:qualifier]``, traffic split applied."""
        main, weights, specs = self._cached("target", name, qualifier, self._load_target)
        for version, weight in weights.items():
            if random.random() < weight:
                return specs[version], version
        return specs[main], main

    def _load_target(self, name: str, qualifier: str | None):
        with self.cloud.store.read() as conn:
            main = self._version_of(conn, name, qualifier)
            weights: dict[str, float] = {}
            if main != qualifier and qualifier not in (None, m.LATEST):
                routing = self._alias_row(conn, name, qualifier).routing
                weights = json.loads(routing).get("AdditionalVersionWeights", {}) if routing else {}
            specs = {v: self._spec(name, self._version_row(conn, name, v)) for v in (main, *weights)}
        return main, weights, specs

    def invoke(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        kind = params.get("InvocationType") or "RequestResponse"
        spec, version = self._target(name, qualifier)
        payload = _payload(params.get("Payload"), kind)
        if kind == "DryRun":
            return {"StatusCode": 204}
        if kind == "Event":
            self.events.submit(Event(ctx.request_id, name, qualifier, payload, time.monotonic()))
            return {"StatusCode": 202, "Payload": b""}
        call = Invocation(
            ctx.request_id,
            payload,
            self._arn(name, qualifier),
            qualifier,
            _client_context(params.get("ClientContext")),
        )
        try:
            outcome = self.runtime.invoke(spec, call)
        except Throttled as throttled:
            raise m.TooManyRequests(THROTTLE_MESSAGE, Reason=throttled.reason.value, Type="User") from None
        result: dict = {"StatusCode": 200, "Payload": outcome.payload, "ExecutedVersion": version}
        if outcome.function_error:
            result["FunctionError"] = outcome.function_error
        if params.get("LogType") == "Tail":
            result["LogResult"] = reports.tail(outcome.log_text)
        return result

    def invoke_async(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params, qualifier_ok=False)
        self._target(name, qualifier)
        payload = params.get("InvokeArgs") or b""
        payload = payload.read() if hasattr(payload, "read") else payload
        payload = _payload(payload, "Event")
        self.events.submit(Event(ctx.request_id, name, None, payload, time.monotonic()))
        return {"Status": 202}

    def _run_event(self, event: Event) -> Result:
        """One attempt of a queued event, against the function as it is now."""
        try:
            spec, _ = self._target(event.function, event.qualifier)
        except m.ResourceNotFound:
            return Result.GONE
        call = Invocation(
            event.request_id, event.payload, self._arn(event.function, event.qualifier), event.qualifier
        )
        try:
            outcome = self.runtime.invoke(spec, call)
        except Throttled:
            return Result.THROTTLED
        return Result.FUNCTION_ERROR if outcome.error is not None else Result.OK

    def _retry_policy(self, event: Event) -> RetryPolicy:
        with self.cloud.store.read() as conn:
            row = self._event_config_row(conn, event.function, event.qualifier)
        if row is None:
            return RetryPolicy()
        defaults = RetryPolicy()
        return RetryPolicy(
            defaults.max_retries if row.max_retries is None else row.max_retries,
            defaults.max_age_s if row.max_age is None else row.max_age,
        )

    # ----- event invoke configuration ---------------------------------------------------------------
    def _event_config_row(self, conn, name: str, qualifier: str | None):
        return conn.execute(
            select(t.event_configs).where(
                t.event_configs.c.function == name, t.event_configs.c.qualifier == (qualifier or m.LATEST)
            )
        ).first()

    def _event_config_shape(self, name: str, row) -> dict:
        out: dict = {"LastModified": row.modified, "FunctionArn": self._arn(name, row.qualifier)}
        if row.max_retries is not None:
            out["MaximumRetryAttempts"] = row.max_retries
        if row.max_age is not None:
            out["MaximumEventAgeInSeconds"] = row.max_age
        return out

    def put_function_event_invoke_config(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        retries, age = params.get("MaximumRetryAttempts"), params.get("MaximumEventAgeInSeconds")
        if retries is None and age is None:
            raise m.user("You must specify at least one of error handling or destination setting.")
        if params.get("DestinationConfig"):
            raise m.user("Kennel has no SQS, SNS or EventBridge yet: DestinationConfig is not supported.")
        with self.cloud.store.write() as conn:
            self._check_qualifier(conn, name, qualifier)
            key = qualifier or m.LATEST
            conn.execute(
                delete(t.event_configs).where(
                    t.event_configs.c.function == name, t.event_configs.c.qualifier == key
                )
            )
            conn.execute(
                t.event_configs.insert().values(
                    function=name,
                    qualifier=key,
                    max_retries=retries,
                    max_age=age,
                    modified=ctx.now.timestamp(),
                )
            )
            row = self._event_config_row(conn, name, qualifier)
        return self._event_config_shape(name, row)

    def get_function_event_invoke_config(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.read() as conn:
            self._function_row(conn, name)
            row = self._event_config_row(conn, name, qualifier)
        if row is None:
            arn = self._arn(name, qualifier or m.LATEST)
            raise m.user(f"The function {arn} doesn't have an EventInvokeConfig", m.ResourceNotFound)
        return self._event_config_shape(name, row)

    def delete_function_event_invoke_config(self, params: dict, ctx: Context) -> dict:
        self.get_function_event_invoke_config(params, ctx)
        name, qualifier = self._name(params)
        with self.cloud.store.write() as conn:
            conn.execute(
                delete(t.event_configs).where(
                    t.event_configs.c.function == name, t.event_configs.c.qualifier == (qualifier or m.LATEST)
                )
            )
        return {}


def _payload(data, kind: str) -> bytes:
    data = bytes(data or b"")
    limit = reports.ASYNC_PAYLOAD_LIMIT if kind == "Event" else reports.SYNC_PAYLOAD_LIMIT
    if len(data) > limit:
        operation = "InvokeAsync" if kind == "Event" else "Invoke"
        raise m.user(
            f"Request must be smaller than {limit} bytes for the {operation} operation", m.RequestTooLarge
        )
    if data.strip():
        try:
            json.loads(data)
        except ValueError as exc:
            raise m.user(f"Could not parse request body into json: {exc}", m.InvalidRequestContent) from None
        except RecursionError:  # thousands of levels deep: more than the parser (or a handler) can take
            raise m.user("Could not parse request body into json: nested too deeply",
                         m.InvalidRequestContent) from None  # fmt: skip
    return data


def _client_context(header: str | None) -> dict | None:
    if not header:
        return None
    try:
        value = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise m.user("Client context must be a valid Base64-encoded JSON object.") from None
    return value if isinstance(value, dict) else None
