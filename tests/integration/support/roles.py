"""Execution roles for tests: SageMaker and Lambda refuse a role that is missing or does not trust them
(and the caller needs iam:PassRole on it), as AWS does, so every test that names a role creates it."""

from __future__ import annotations

import json


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def service_role(cloud, name: str = "SageMakerRole", service: str = "sagemaker.amazonaws.com") -> str:
    """The ARN of role ``name`` trusting ``service``, created with the admin's credentials if missing."""
    iam = cloud.client("iam")
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(service))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
