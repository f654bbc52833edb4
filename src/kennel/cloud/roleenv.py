"""Credentials of a role session for a client outside Kennel (`kennel env --role NAME`).

The SageMaker SDK's ``get_execution_role()`` wants the caller to *be* a role, as a notebook
instance is. For a role the admin may assume, this is an ordinary ``sts:AssumeRole`` through the
gateway. A notebook instance's role usually trusts only ``sagemaker.amazonaws.com``; then Kennel
acts as that service, as AWS does when it starts the notebook, and writes the session itself
(only someone who can read the state directory can do that, i.e. the owner of this Kennel).
"""

from __future__ import annotations

import json
import urllib.parse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from kennel.cloud.services.sts.provider import issue_session
from kennel.cloud.statestore import StateStore
from kennel.settings import Settings

SESSION_SECONDS = 12 * 3600
ACTING_SERVICES = ("sagemaker.amazonaws.com",)


class RoleEnvError(Exception):
    pass


def _trusted_services(document: str | dict) -> set[str]:
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    found: set[str] = set()
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        service = (statement.get("Principal") or {}).get("Service", [])
        found.update([service] if isinstance(service, str) else service)
    return found


def role_credentials(settings: Settings, endpoint: str, key: str, secret: str, role: str) -> dict:
    session = boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name=settings.region
    )
    config = Config(retries={"max_attempts": 1})
    iam = session.client("iam", endpoint_url=endpoint, config=config)
    try:
        found = iam.get_role(RoleName=role.rsplit("/", 1)[-1])["Role"]
    except ClientError as exc:
        raise RoleEnvError(f"no role {role}: {exc.response['Error']['Message']}") from None
    sts = session.client("sts", endpoint_url=endpoint, config=config)
    try:
        return sts.assume_role(RoleArn=found["Arn"], RoleSessionName="kennel-env")["Credentials"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "AccessDenied":
            raise RoleEnvError(exc.response["Error"]["Message"]) from None
        refusal = exc.response["Error"]["Message"]
    services = _trusted_services(found["AssumeRolePolicyDocument"]) & set(ACTING_SERVICES)
    if not services:
        raise RoleEnvError(f"{refusal} (and the role trusts none of {', '.join(ACTING_SERVICES)})")
    store = StateStore(settings.db_path)
    try:
        creds = issue_session(
            store, found["RoleName"], "SageMaker", f"kennel-env:{services.pop()}", SESSION_SECONDS
        )
    finally:
        store.close()
    return creds
