"""The start-up heap freeze: survivors leave the collector's reach; the switch turns it off."""

from __future__ import annotations

import gc

from kennel.runtime.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can reclaim it


def test_freeze_moves_survivors_out_of_every_generation() -> None:
    gc.unfreeze()
    try:
        kept = [_Node() for _ in range(1000)]
        assert freeze_startup_heap({}) is True
        assert gc.get_freeze_count() >= len(kept)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(node) in tracked for node in kept)  # frozen: no generation lists them
    finally:
        gc.unfreeze()


def test_garbage_made_after_the_freeze_is_still_collected() -> None:
    gc.unfreeze()
    try:
        freeze_startup_heap({})
        node = _Node()
        alive = id(node)
        del node
        gc.collect()
        assert alive not in {id(o) for o in gc.get_objects()}
    finally:
        gc.unfreeze()


def test_the_switch_turns_it_off() -> None:
    gc.unfreeze()
    for value in ("0", "false", "off", "NO"):
        assert freeze_startup_heap({"KENNEL_GC_FREEZE": value}) is False
    assert gc.get_freeze_count() == 0
