"""Real compute behind small interfaces: model-server instances, function environments, control loops.

Nothing here imports ``kennel.cloud``; providers hand in what runtime components need (sinks for
metrics and logs, credentials, a clock).
"""
