"""SageMaker control plane: models, endpoint configs and endpoints served by local model-server instances."""
