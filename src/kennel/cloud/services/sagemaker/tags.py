"""AddTags, ListTags and DeleteTags for every SageMaker resource Kennel keeps (by ARN)."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Table, select, update

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import dumps

MAX_TAGS = 50
_TABLES: dict[str, Table] = {
    "model": t.models,
    "endpoint-config": t.endpoint_configs,
    "endpoint": t.endpoints,
    "training-job": t.training_jobs,
    "hyper-parameter-tuning-job": t.tuning_jobs,
}


class SageMakerTags:
    def __init__(self, store, arn: Callable[[str, str], str]) -> None:
        self.store = store
        self.arn = arn

    def _locate(self, resource_arn: str) -> tuple[Table, str]:
        try:
            kind, name = resource_arn.split(":", 5)[5].split("/", 1)
        except (IndexError, ValueError):
            raise ValidationException(f"{resource_arn} is not a valid SageMaker resource ARN.") from None
        table = _TABLES.get(kind)
        if table is None:
            raise ValidationException(f"Kennel does not keep tags for {kind} resources.")
        # ARNs carry the lower-cased name; the row keeps the name as created.
        with self.store.read() as conn:
            for row in conn.execute(select(table.c.name, table.c.arn)):
                if row.arn == resource_arn or row.name.lower() == name.lower():
                    return table, row.name
        raise ValidationException(f"Could not find the resource {resource_arn}.")

    def _tags(self, table: Table, name: str) -> list[dict]:
        with self.store.read() as conn:
            return json.loads(conn.execute(select(table.c.tags).where(table.c.name == name)).one()[0] or "[]")

    def _write(self, table: Table, name: str, tags: list[dict]) -> None:
        with self.store.write() as conn:
            conn.execute(update(table).where(table.c.name == name).values(tags=dumps(tags)))

    def add(self, params: dict) -> dict:
        table, name = self._locate(params["ResourceArn"])
        merged = {tag["Key"]: tag["Value"] for tag in self._tags(table, name)}
        for tag in params["Tags"]:
            merged[tag["Key"]] = tag.get("Value", "")
        if len(merged) > MAX_TAGS:
            raise ValidationException(f"A resource can have at most {MAX_TAGS} tags.")
        tags = [{"Key": k, "Value": v} for k, v in merged.items()]
        self._write(table, name, tags)
        return {"Tags": tags}

    def list(self, params: dict) -> dict:
        table, name = self._locate(params["ResourceArn"])
        return {"Tags": self._tags(table, name)}

    def delete(self, params: dict) -> dict:
        table, name = self._locate(params["ResourceArn"])
        drop = set(params["TagKeys"])
        self._write(table, name, [tag for tag in self._tags(table, name) if tag["Key"] not in drop])
        return {}
