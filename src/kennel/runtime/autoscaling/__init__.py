"""Endpoint autoscaling: pure alarm and target-tracking decisions, schedules, and the control loop.

Nothing here knows about AWS APIs or storage: the Application Auto Scaling provider gathers a context
(metric values, alarm states, capacities, cooldown state), asks these functions for a decision and
carries it out.
"""
