"""S3 request → operation and the IAM checks it needs (the S3 authorization reference's mapping)."""

from __future__ import annotations

import pytest

from kennel.cloud.objectstore.operations import (
    LOCAL_OPERATIONS,
    S3RequestError,
    bucket_from_host,
    classify,
    split_path,
)

B = "arn:aws:s3:::bkt"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "operation", "checks"),
    [
        ("GET", "/", {}, {}, "ListBuckets", [("s3:ListAllMyBuckets", "arn:aws:s3:::*")]),
        ("PUT", "/bkt", {}, {}, "CreateBucket", [("s3:CreateBucket", B)]),
        ("HEAD", "/bkt", {}, {}, "HeadBucket", [("s3:ListBucket", B)]),
        ("DELETE", "/bkt", {}, {}, "DeleteBucket", [("s3:DeleteBucket", B)]),
        ("GET", "/bkt", {"list-type": "2"}, {}, "ListObjectsV2", [("s3:ListBucket", B)]),
        ("GET", "/bkt", {}, {}, "ListObjects", [("s3:ListBucket", B)]),
        ("GET", "/bkt", {"location": ""}, {}, "GetBucketLocation", [("s3:GetBucketLocation", B)]),
        ("GET", "/bkt", {"uploads": ""}, {}, "ListMultipartUploads", [("s3:ListBucketMultipartUploads", B)]),
        ("DELETE", "/bkt", {"tagging": ""}, {}, "DeleteBucketTagging", [("s3:PutBucketTagging", B)]),
        ("GET", "/bkt/a/b%20c.txt", {}, {}, "GetObject", [("s3:GetObject", f"{B}/a/b c.txt")]),
        ("HEAD", "/bkt/k", {}, {}, "HeadObject", [("s3:GetObject", f"{B}/k")]),
        ("PUT", "/bkt/k", {}, {}, "PutObject", [("s3:PutObject", f"{B}/k")]),
        ("DELETE", "/bkt/k", {}, {}, "DeleteObject", [("s3:DeleteObject", f"{B}/k")]),
        ("POST", "/bkt/k", {"uploads": ""}, {}, "CreateMultipartUpload", [("s3:PutObject", f"{B}/k")]),
        ("PUT", "/bkt/k", {"uploadId": "u", "partNumber": "1"}, {}, "UploadPart",
         [("s3:PutObject", f"{B}/k")]),
        ("POST", "/bkt/k", {"uploadId": "u"}, {}, "CompleteMultipartUpload", [("s3:PutObject", f"{B}/k")]),
        ("DELETE", "/bkt/k", {"uploadId": "u"}, {}, "AbortMultipartUpload",
         [("s3:AbortMultipartUpload", f"{B}/k")]),
        ("GET", "/bkt/k", {"uploadId": "u"}, {}, "ListParts", [("s3:ListMultipartUploadParts", f"{B}/k")]),
        ("GET", "/bkt/k", {"tagging": ""}, {}, "GetObjectTagging", [("s3:GetObjectTagging", f"{B}/k")]),
        ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "/src%20b/a%2Fb.txt?versionId=3"}, "CopyObject",
         [("s3:PutObject", f"{B}/k"), ("s3:GetObject", "arn:aws:s3:::src b/a/b.txt")]),
        ("PUT", "/bkt/k", {"uploadId": "u", "partNumber": "2"}, {"x-amz-copy-source": "other/x"},
         "UploadPartCopy", [("s3:PutObject", f"{B}/k"), ("s3:GetObject", "arn:aws:s3:::other/x")]),
    ],
)  # fmt: skip
def test_operations_and_their_checks(method, path, query, headers, operation, checks) -> None:
    call = classify(method, path, query, headers)
    assert call.operation == operation
    assert [(c.action, c.resource) for c in call.checks] == checks


@pytest.mark.parametrize(
    ("method", "query", "operation", "action"),
    [
        ("GET", {"policy": ""}, "GetBucketPolicy", "s3:GetBucketPolicy"),
        ("HEAD", {"policy": ""}, "GetBucketPolicy", "s3:GetBucketPolicy"),
        ("PUT", {"policy": ""}, "PutBucketPolicy", "s3:PutBucketPolicy"),
        ("DELETE", {"policy": ""}, "DeleteBucketPolicy", "s3:DeleteBucketPolicy"),
        ("GET", {"policyStatus": ""}, "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"),
        ("GET", {"website": ""}, "GetBucketWebsite", "s3:GetBucketWebsite"),
        ("GET", {"encryption": ""}, "GetBucketEncryption", "s3:GetEncryptionConfiguration"),
        ("GET", {"replication": ""}, "GetBucketReplication", "s3:GetReplicationConfiguration"),
        ("GET", {"object-lock": ""}, "GetObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration"),
        ("GET", {"publicAccessBlock": ""}, "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
        ("GET", {"ownershipControls": ""}, "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls"),
        ("GET", {"logging": ""}, "GetBucketLogging", "s3:GetBucketLogging"),
        ("GET", {"notification": ""}, "GetBucketNotificationConfiguration", "s3:GetBucketNotification"),
        ("GET", {"accelerate": ""}, "GetBucketAccelerateConfiguration", "s3:GetAccelerateConfiguration"),
        ("GET", {"requestPayment": ""}, "GetBucketRequestPayment", "s3:GetBucketRequestPayment"),
        ("GET", {"analytics": ""}, "ListBucketAnalyticsConfigurations", "s3:GetAnalyticsConfiguration"),
        ("GET", {"analytics": "", "id": "a"}, "GetBucketAnalyticsConfiguration",
         "s3:GetAnalyticsConfiguration"),
        ("GET", {"metrics": ""}, "ListBucketMetricsConfigurations", "s3:GetMetricsConfiguration"),
        ("GET", {"metrics": "", "id": "m"}, "GetBucketMetricsConfiguration", "s3:GetMetricsConfiguration"),
        ("GET", {"inventory": ""}, "ListBucketInventoryConfigurations", "s3:GetInventoryConfiguration"),
        ("GET", {"inventory": "", "id": "i"}, "GetBucketInventoryConfiguration",
         "s3:GetInventoryConfiguration"),
        ("GET", {"intelligent-tiering": ""}, "ListBucketIntelligentTieringConfigurations",
         "s3:GetIntelligentTieringConfiguration"),
        ("GET", {"intelligent-tiering": "", "id": "t"}, "GetBucketIntelligentTieringConfiguration",
         "s3:GetIntelligentTieringConfiguration"),
    ],
)  # fmt: skip
def test_operations_kennel_answers_itself(method, query, operation, action) -> None:
    call = classify(method, "/bkt", query, {})
    assert (call.operation, [(c.action, c.resource) for c in call.checks]) == (operation, [(action, B)])
    assert call.operation in LOCAL_OPERATIONS


def test_forwarded_operations_are_not_answered_locally() -> None:
    for method, query in [("GET", {"acl": ""}), ("GET", {"tagging": ""}), ("PUT", {}), ("DELETE", {})]:
        assert classify(method, "/bkt", query, {}).operation not in LOCAL_OPERATIONS


def test_list_requests_carry_the_s3_condition_keys() -> None:
    call = classify(
        "GET", "/bkt", {"list-type": "2", "prefix": "data/", "delimiter": "/", "max-keys": "5"}, {}
    )
    assert call.checks[0].context == {"s3:prefix": "data/", "s3:delimiter": "/", "s3:max-keys": "5"}


def test_delete_objects_authorises_every_key() -> None:
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a/1</Key></Object>'
        b"<Object><Key>b/2</Key></Object><Quiet>true</Quiet></Delete>"
    )
    call = classify("POST", "/bkt", {"delete": ""}, {}, body=body)
    assert [(c.action, c.resource) for c in call.checks] == [
        ("s3:DeleteObject", f"{B}/a/1"),
        ("s3:DeleteObject", f"{B}/b/2"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "code"),
    [
        ("PUT", "/bkt/k", {"torrent": ""}, {}, b"", "NotImplemented"),
        ("POST", "/bkt/k", {"select": "", "select-type": "2"}, {}, b"", "NotImplemented"),
        ("HEAD", "/bkt/k", {"retention": ""}, {}, b"", "MethodNotAllowed"),
        # Configuration Kennel never holds: its GET is answered, AWS's other methods are not implemented,
        # and a method AWS does not define for it is not allowed.
        ("PUT", "/bkt", {"website": ""}, {}, b"", "NotImplemented"),
        ("DELETE", "/bkt", {"encryption": ""}, {}, b"", "NotImplemented"),
        ("PUT", "/bkt", {"logging": ""}, {}, b"", "NotImplemented"),
        ("DELETE", "/bkt", {"logging": ""}, {}, b"", "MethodNotAllowed"),
        ("POST", "/bkt", {"policy": ""}, {}, b"", "MethodNotAllowed"),
        ("PUT", "/bkt", {"policyStatus": ""}, {}, b"", "MethodNotAllowed"),
        # A bucket subresource at a key's path is the bucket's: its methods only, AWS's others not
        # implemented where the bucket's are not.
        ("HEAD", "/bkt/k", {"location": ""}, {}, b"", "MethodNotAllowed"),
        ("PUT", "/bkt/k", {"website": ""}, {}, b"", "NotImplemented"),
        ("PUT", "/bkt/k", {"versions": ""}, {}, b"", "MethodNotAllowed"),
        ("POST", "/bkt/k", {"delete": ""}, {}, b"", "MethodNotAllowed"),  # POST on an object
        ("POST", "/bkt/k", {"policy": ""}, {}, b"", "MethodNotAllowed"),
        ("POST", "/bkt", {}, {}, b"", "MethodNotAllowed"),
        ("PUT", "/", {}, {}, b"", "MethodNotAllowed"),
        ("GET", "/bkt/k", {"uploads": ""}, {}, b"", "MethodNotAllowed"),
        ("POST", "/bkt", {"delete": ""}, {}, b"<Delete>", "MalformedXML"),
        ("POST", "/bkt", {"delete": ""}, {}, b"<Delete></Delete>", "MalformedXML"),
        ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "only-bucket"}, b"", "InvalidArgument"),
        ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "/sthree-kennel-side-keys/bkt/x"}, b"", "NoSuchBucket"),
        ("GET", "/sthree-kennel-side-keys/bkt/x", {}, {}, b"", "NoSuchBucket"),
        ("PUT", "/sthree-mine", {}, {}, b"", "InvalidBucketName"),
    ],
)
def test_requests_that_are_refused(method, path, query, headers, body, code) -> None:
    with pytest.raises(S3RequestError) as refused:
        classify(method, path, query, headers, body=body)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("method", "query", "operation", "action"),
    [
        ("GET", {"location": ""}, "GetBucketLocation", "s3:GetBucketLocation"),
        ("GET", {"versions": ""}, "ListObjectVersions", "s3:ListBucketVersions"),
        ("GET", {"policy": ""}, "GetBucketPolicy", "s3:GetBucketPolicy"),
        ("DELETE", {"policy": ""}, "DeleteBucketPolicy", "s3:DeleteBucketPolicy"),
        ("GET", {"website": ""}, "GetBucketWebsite", "s3:GetBucketWebsite"),
        ("GET", {"metrics": "", "id": "m"}, "GetBucketMetricsConfiguration", "s3:GetMetricsConfiguration"),
    ],
)
def test_a_bucket_subresource_at_a_key_is_the_buckets_operation(method, query, operation, action) -> None:
    """S3 serves ``GET /bucket/key?location`` as GetBucketLocation, the key ignored: authorised on the
    bucket, and marked so that the proxy forwards it to the bucket's path, not the key's."""
    call = classify(method, "/bkt/some/key", query, {})
    assert (call.operation, call.key, call.key_ignored) == (operation, None, True)
    assert [(c.action, c.resource) for c in call.checks] == [(action, B)]
    assert not classify(method, "/bkt", query, {}).key_ignored


@pytest.mark.parametrize(
    ("method", "query", "operation", "action"),
    [
        ("GET", {"legal-hold": ""}, "GetObjectLegalHold", "s3:GetObjectLegalHold"),
        ("PUT", {"legal-hold": ""}, "PutObjectLegalHold", "s3:PutObjectLegalHold"),
        ("GET", {"retention": ""}, "GetObjectRetention", "s3:GetObjectRetention"),
        ("PUT", {"retention": ""}, "PutObjectRetention", "s3:PutObjectRetention"),
    ],
)
def test_object_lock_operations_are_answered_by_kennel(method, query, operation, action) -> None:
    call = classify(method, "/bkt/k", query, {})
    assert call.operation == operation
    assert [(c.action, c.resource) for c in call.checks] == [(action, f"{B}/k")]
    assert operation in LOCAL_OPERATIONS


def test_virtual_hosted_addressing() -> None:
    assert bucket_from_host("my-bucket.localhost:4566") == "my-bucket"
    assert bucket_from_host("data.set.s3.us-east-1.amazonaws.com") == "data.set"
    assert bucket_from_host("127.0.0.1:4566") is None
    assert bucket_from_host("localhost") is None
    assert split_path("/key/with/slashes", "my-bucket") == ("my-bucket", "key/with/slashes")
    assert classify("GET", "/", {}, {}, host_bucket="my-bucket").operation == "ListObjects"
