"""The dog-breed classifier: data, models, training, evaluation, inference handler, artifacts.

This package knows nothing of AWS or HTTP, and it imports nothing else from Kennel, so a
model artifact can carry it inside ``code/`` and run in a stock SageMaker PyTorch container.
"""
