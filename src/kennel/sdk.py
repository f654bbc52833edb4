"""Point SDKs that hard-code AWS endpoints (the SageMaker Python SDK's STS client) at Kennel.

    import sagemaker
    from kennel.sdk import kennel_session
    session = sagemaker.Session(boto_session=kennel_session())

Every client made from the returned boto3 session sends its requests to Kennel, whatever endpoint
the SDK chose, because the URL is rewritten just before signing (so the signature matches).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

import boto3

_VIRTUAL_HOSTED_S3 = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")


def redirect_to(endpoint: str):
    target = urlsplit(endpoint)

    def rewrite(request, **_) -> None:
        url = urlsplit(request.url)
        if url.hostname and url.hostname.endswith((".amazonaws.com", ".amazonaws.com.cn")):
            path = url.path
            # S3 clients address buckets as hosts (bucket.s3.region.amazonaws.com); Kennel's S3 is
            # path-style, so the bucket moves into the path before the request is signed.
            virtual = _VIRTUAL_HOSTED_S3.match(url.hostname)
            if virtual is not None:
                path = f"/{virtual.group('bucket')}{path or '/'}"
            request.url = urlunsplit((target.scheme, target.netloc, path, url.query, url.fragment))

    return rewrite


def redirect_every_session(endpoint: str | None = None) -> None:
    """Make every botocore session created from now on (so every ``boto3.Session()``, ``boto3.client()``
    and every session the SageMaker SDK makes for itself) send its requests to Kennel.

    For code that cannot be handed a session, such as a notebook's cells: a Jupyter kernel calls this
    at start-up (``kennel notebook``). Idempotent.
    """
    import botocore.session

    rewrite = redirect_to(endpoint or os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4566")
    cls = botocore.session.Session
    if getattr(cls.__init__, "_kennel_redirect", False):
        return
    original = cls.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.register("before-sign", rewrite, unique_id="kennel-redirect")

    init._kennel_redirect = True  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[method-assign]
    if boto3.DEFAULT_SESSION is not None:  # made before the hook: redirect it too
        boto3.DEFAULT_SESSION.events.register("before-sign", rewrite, unique_id="kennel-redirect")


def kennel_session(endpoint: str | None = None, **session_kwargs) -> boto3.Session:
    """A boto3 session whose clients all talk to Kennel (default endpoint: ``$AWS_ENDPOINT_URL``)."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4566"
    session = boto3.Session(**session_kwargs)
    session.events.register("before-sign", redirect_to(endpoint))
    return session
