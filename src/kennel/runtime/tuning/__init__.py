"""Hyperparameter search behind SageMaker tuning jobs (Optuna, ask-and-tell); never imports cloud."""
