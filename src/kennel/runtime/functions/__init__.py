"""Lambda execution environments: one process per environment, pooled per function version.

Kept empty on purpose: every environment process imports this package before its bootstrap, so
anything imported here would be paid again on each cold start. Import the submodules directly:
``admission`` (the pure throttle decision), ``environment`` (one process), ``pool`` (the runtime the
provider drives), ``events`` (the asynchronous invocation queue), ``reports`` (log lines, errors).
"""
