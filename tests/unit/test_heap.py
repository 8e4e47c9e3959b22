"""Start-up objects leave the garbage collector's full passes; start-up garbage does not stay."""

from __future__ import annotations

import gc
import weakref


class _Node:
    cycle: _Node


def test_live_start_up_objects_are_frozen_after_the_garbage_is_collected() -> None:
    from jobcast.service.serving.heap import freeze_startup_objects

    garbage = _Node()
    garbage.cycle = garbage  # only the cycle collector can free it
    gone = weakref.ref(garbage)
    del garbage
    try:
        freeze_startup_objects()
        assert gone() is None  # collected first, not frozen with the rest
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
