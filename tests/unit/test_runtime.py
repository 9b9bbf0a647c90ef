"""The process runtime of the long-running commands: uvloop, and a frozen start-up heap."""

import asyncio
import gc
import weakref

import uvloop

from ledgerflow.runtime import GC_THRESHOLDS, run_loop, tune_gc


def test_commands_run_on_uvloop() -> None:
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert run_loop(loop_type()) is uvloop.Loop


class _Node:
    other: "_Node"


def _garbage_cycle() -> weakref.ref[_Node]:
    """Two objects that only reach each other: only the cyclic collector frees them."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_tuning_collects_first_and_later_garbage_is_still_collected() -> None:
    thresholds = gc.get_threshold()
    made_before = _garbage_cycle()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert made_before() is None, "garbage of the start-up is not frozen"
        assert gc.get_freeze_count() > 0, "what lives now is out of the collector's reach"
        made_after = _garbage_cycle()
        gc.collect()
        assert made_after() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
