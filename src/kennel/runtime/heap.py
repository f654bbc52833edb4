"""Long-lived processes keep their start-up heap out of the garbage collector's way.

The gateway holds ~140,000 objects once botocore's service models, routing tables and providers are
loaded; a model server holds torch's and the model's. CPython's full (generation-2) collection walks all
of them: 20-70 ms measured here for the gateway, landing on whichever request happens to allocate at
that moment — a latency tail with no cause in the request itself. After start-up, one collection
clears what loading left behind and ``gc.freeze`` moves the survivors to the permanent generation,
which no later collection scans. Objects created while serving are collected as before.
``KENNEL_GC_FREEZE=0`` turns it off (benchmarks measure the difference in the same run).
"""

from __future__ import annotations

import gc
import os


def freeze_startup_heap(env: dict[str, str] | None = None) -> bool:
    """Collect once, then freeze what survived; False (nothing done) when KENNEL_GC_FREEZE is off."""
    setting = (os.environ if env is None else env).get("KENNEL_GC_FREEZE", "1").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    gc.collect()
    gc.freeze()
    return True
