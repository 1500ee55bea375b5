"""The access log: lines of one turn of the event loop written together, none lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from gpucloud.ops.logs import Access, AccessLog


class Stream:
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for data in self.writes for line in data.splitlines()]


def access(request_id: str) -> Access:
    return Access(
        request_id,
        "GET",
        "/gpu-cloud/ssh-keys",
        "/gpu-cloud/ssh-keys",
        200,
        0.0012,
        "127.0.0.1",
        None,
    )


@pytest.fixture
def log() -> Iterator[tuple[AccessLog, Stream]]:
    stream = Stream()
    access_log = AccessLog()
    access_log.setup(enabled=True, json_lines=True, stream=stream)  # type: ignore[arg-type]
    yield access_log, stream


def test_the_requests_of_one_turn_are_written_together_at_the_next(
    log: tuple[AccessLog, Stream],
) -> None:
    """If two requests are answered in one turn of the event loop, then nothing is written
    during that turn, and both lines are written, in order, in one write at the next."""
    access_log, stream = log

    async def serve() -> int:
        access_log.record(access("first"))
        access_log.record(access("second"))
        written_during_the_turn = len(stream.writes)
        await asyncio.sleep(0)
        return written_during_the_turn

    assert asyncio.run(serve()) == 0
    assert len(stream.writes) == 1
    lines = stream.lines()
    assert [line["request_id"] for line in lines] == ["first", "second"]
    assert lines[0]["msg"] == "GET /gpu-cloud/ssh-keys 200" and lines[0]["duration_ms"] == 1.2


def test_a_line_left_by_a_stopped_loop_is_written_before_the_next(
    log: tuple[AccessLog, Stream],
) -> None:
    """If a loop stops before the turn that would write its lines, then they are written,
    first, when the next request is logged — from another loop or from none."""
    access_log, stream = log
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(access_log.record, access("left behind"))
        loop.call_soon(loop.stop)  # in the same turn: the turn that would write never comes
        loop.run_forever()
    finally:
        loop.close()
    assert stream.writes == []
    assert asyncio.run(_record(access_log, "next loop")) is None
    access_log.record(access("no loop"))
    ids = [line["request_id"] for line in stream.lines()]
    assert ids[-1] == "no loop" and ids.index("left behind") < ids.index("next loop") < 2


async def _record(access_log: AccessLog, request_id: str) -> None:
    access_log.record(access(request_id))


def test_nothing_is_written_when_the_log_is_off(log: tuple[AccessLog, Stream]) -> None:
    """If the access log is off (a level above INFO), then a request writes nothing."""
    access_log, stream = log
    access_log.setup(enabled=False, json_lines=True, stream=stream)  # type: ignore[arg-type]
    access_log.record(access("quiet"))
    assert stream.writes == []
