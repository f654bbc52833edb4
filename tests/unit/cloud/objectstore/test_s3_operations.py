"""S3 request → operation and the IAM checks it needs (the S3 authorization reference's mapping)."""

from __future__ import annotations

import pytest

from kennel.cloud.objectstore.operations import S3RequestError, bucket_from_host, classify, split_path

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
        ("GET", "/bkt", {"policy": ""}, {}, b"", "NotImplemented"),  # not evaluated, so not served
        ("PUT", "/bkt/k", {"retention": ""}, {}, b"", "NotImplemented"),
        ("POST", "/bkt", {}, {}, b"", "MethodNotAllowed"),
        ("PUT", "/", {}, {}, b"", "MethodNotAllowed"),
        ("GET", "/bkt/k", {"uploads": ""}, {}, b"", "MethodNotAllowed"),
        ("POST", "/bkt", {"delete": ""}, {}, b"<Delete>", "MalformedXML"),
        ("POST", "/bkt", {"delete": ""}, {}, b"<Delete></Delete>", "MalformedXML"),
        ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "only-bucket"}, b"", "InvalidArgument"),
    ],
)
def test_requests_that_are_refused(method, path, query, headers, body, code) -> None:
    with pytest.raises(S3RequestError) as refused:
        classify(method, path, query, headers, body=body)
    assert refused.value.code == code


def test_virtual_hosted_addressing() -> None:
    assert bucket_from_host("my-bucket.localhost:4566") == "my-bucket"
    assert bucket_from_host("data.set.s3.us-east-1.amazonaws.com") == "data.set"
    assert bucket_from_host("127.0.0.1:4566") is None
    assert bucket_from_host("localhost") is None
    assert split_path("/key/with/slashes", "my-bucket") == ("my-bucket", "key/with/slashes")
    assert classify("GET", "/", {}, {}, host_bucket="my-bucket").operation == "ListObjects"
