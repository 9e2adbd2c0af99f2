"""The Faust worker's micro-batching: how events are grouped before one batched parse (no broker needed)."""

from __future__ import annotations

import asyncio

import pytest

from streamer.streaming.faust_worker import micro_batches


async def arriving(schedule: list[tuple[float, str]]):
    """Events as a stream delivers them: each after its delay (seconds) from the previous one."""
    for delay, event in schedule:
        await asyncio.sleep(delay)
        yield event


def batches(schedule, max_messages: int, max_wait_s: float) -> list[list[str]]:
    async def collect():
        return [batch async for batch in micro_batches(arriving(schedule), max_messages, max_wait_s)]
    return asyncio.run(collect())


@pytest.mark.parametrize("schedule, max_messages, max_wait_s, expected", [
    ([(0, "a"), (0, "b"), (0, "c")], 8, 0.05, [["a", "b", "c"]]),             # what is there goes together
    ([(0, "a"), (0, "b"), (0, "c")], 2, 0.05, [["a", "b"], ["c"]]),           # never more than max_messages
    ([(0, "a"), (0.3, "b")], 8, 0.05, [["a"], ["b"]]),                        # a late event starts the next batch
    ([(0.2, "a"), (0, "b")], 8, 0.05, [["a", "b"]]),                          # the first event waits as long as it takes
    ([(0, "a"), (0.3, "b"), (0, "c"), (0.3, "d")], 8, 0.05, [["a"], ["b", "c"], ["d"]]),
    ([], 8, 0.05, []),
])
def test_micro_batches_group_events_without_losing_or_reordering_one(schedule, max_messages, max_wait_s, expected):
    got = batches(schedule, max_messages, max_wait_s)
    assert got == expected
    assert [event for batch in got for event in batch] == [event for _, event in schedule]
