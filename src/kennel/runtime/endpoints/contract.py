"""What the gateway and an instance agree on beyond the SageMaker container contract (no heavy imports:
the gateway reads this without loading torch)."""

from __future__ import annotations

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
HANDLER_US = "x-kennel-handler-us"  # time spent in the handler; the router subtracts it from its latency
BATCH_SIZE = "x-kennel-batch-size"  # images in the forward pass that served the request (built-in handler)
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints take at most 6 MB per request
SERVER_MODULE = "kennel.runtime.endpoints.server"
