"""SageMaker training jobs as local compute: the container contract, hosts in sandboxes, an engine.

Nothing here imports ``kennel.cloud``: the SageMaker provider hands in a :class:`~.spec.JobSpec` with
local directories already filled (code, channels), credentials, and sinks for logs and metrics.
"""
