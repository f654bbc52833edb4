"""Application Auto Scaling for SageMaker endpoint variants: targets, policies, activities, schedules."""
