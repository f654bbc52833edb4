"""S3's answers for bucket configuration Kennel never holds (pure).

Kennel's store has no website hosting, default encryption, replication, object lock, public access
block, ownership controls, access logging, event notifications, transfer acceleration, requester pays
or analytics/metrics/inventory/intelligent-tiering configurations, and their PUTs are refused with
NotImplemented. So a GET of any of them has exactly one truthful answer, the one S3 gives for a bucket
where it was never set: a "not configured" error, or an empty configuration where S3 returns one.
Object Lock likewise: an object's legal hold or retention, read or set, gets the refusal S3 gives on a
bucket created without Object Lock.
"""

from __future__ import annotations

from dataclasses import dataclass

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class NotConfigured:
    """The error S3 answers for a configuration that was never set."""

    code: str
    message: str
    status: int = 404


# GET operation → S3's "never configured" error.
_ERRORS: dict[str, NotConfigured] = {
    "GetBucketWebsite": NotConfigured(
        "NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"
    ),
    "GetBucketEncryption": NotConfigured(
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "GetBucketReplication": NotConfigured(
        "ReplicationConfigurationNotFoundError", "The replication configuration was not found"
    ),
    "GetObjectLockConfiguration": NotConfigured(
        "ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"
    ),
    "GetPublicAccessBlock": NotConfigured(
        "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"
    ),
    "GetBucketOwnershipControls": NotConfigured(
        "OwnershipControlsNotFoundError", "The bucket ownership controls were not found"
    ),
}
# Object Lock exists only on buckets created with it, which Kennel's never are: an object's legal hold
# and retention, read or written, get the refusal S3 gives on such a bucket.
_NO_OBJECT_LOCK = NotConfigured("InvalidRequest", "Bucket is missing Object Lock Configuration", status=400)
for _operation in ("GetObjectLegalHold", "PutObjectLegalHold", "GetObjectRetention", "PutObjectRetention"):
    _ERRORS[_operation] = _NO_OBJECT_LOCK
_NO_SUCH_CONFIGURATION = NotConfigured("NoSuchConfiguration", "The specified configuration does not exist.")
for _operation in (
    "GetBucketAnalyticsConfiguration",
    "GetBucketMetricsConfiguration",
    "GetBucketInventoryConfiguration",
    "GetBucketIntelligentTieringConfiguration",
):
    _ERRORS[_operation] = _NO_SUCH_CONFIGURATION

# GET operation → the document S3 returns when nothing was configured (root element, inner XML). The
# list results' root names are those of the S3 API reference's response syntax.
_EMPTY: dict[str, tuple[str, str]] = {
    "GetBucketLogging": ("BucketLoggingStatus", ""),
    "GetBucketNotificationConfiguration": ("NotificationConfiguration", ""),
    "GetBucketAccelerateConfiguration": ("AccelerateConfiguration", ""),
    "GetBucketRequestPayment": ("RequestPaymentConfiguration", "<Payer>BucketOwner</Payer>"),
    "ListBucketAnalyticsConfigurations": (
        "ListBucketAnalyticsConfigurationResult",
        "<IsTruncated>false</IsTruncated>",
    ),
    "ListBucketMetricsConfigurations": (
        "ListMetricsConfigurationsResult",
        "<IsTruncated>false</IsTruncated>",
    ),
    "ListBucketInventoryConfigurations": (
        "ListInventoryConfigurationsResult",
        "<IsTruncated>false</IsTruncated>",
    ),
    "ListBucketIntelligentTieringConfigurations": (
        "ListBucketIntelligentTieringConfigurationsOutput",
        "<IsTruncated>false</IsTruncated>",
    ),
}

OPERATIONS = frozenset(_ERRORS) | frozenset(_EMPTY)


def unconfigured(operation: str) -> NotConfigured | bytes:
    """The answer to a GET of configuration Kennel never holds: S3's error, or the XML document."""
    if operation in _ERRORS:
        return _ERRORS[operation]
    root, inner = _EMPTY[operation]
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{XMLNS}">{inner}</{root}>'.encode()
