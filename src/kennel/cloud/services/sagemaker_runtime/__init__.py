"""SageMaker Runtime: InvokeEndpoint through the router of the SageMaker provider's endpoints."""
