"""hrnet.io.streams: read ahead, write behind, and the newest frame of a live source."""

import threading
import time

import pytest

from hrnet.io.streams import LatestFrame, ReadAhead, WriteBehind


def test_read_ahead_keeps_the_order_and_stays_within_its_depth():
    produced = []

    def items():
        for i in range(10):
            produced.append(i)
            yield i

    reader = ReadAhead(items(), depth=2)
    time.sleep(0.2)
    # depth 2 in the queue, and one more item made while waiting for room: never the whole source
    assert len(produced) <= 3
    assert list(reader) == list(range(10))


def test_read_ahead_raises_the_producers_error_where_it_happened():
    def items():
        yield 1
        raise OSError("disk gone")

    taken = []
    with pytest.raises(OSError, match="disk gone"):
        for item in ReadAhead(items()):
            taken.append(item)
    assert taken == [1]


def test_read_ahead_close_stops_the_producer_and_runs_its_cleanup():
    cleaned = threading.Event()

    def items():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.set()

    reader = ReadAhead(items(), depth=1)
    assert next(iter(reader)) == 0
    reader.close()
    assert cleaned.wait(2)


def test_write_behind_runs_in_order_and_reports_the_first_failure():
    done = []
    with WriteBehind(depth=2) as writer:
        for i in range(5):
            writer.submit(lambda i=i: done.append(i))
    assert done == list(range(5))

    writer = WriteBehind()
    writer.submit(lambda: done.append("a"))
    writer.submit(lambda: 1 / 0)
    writer.submit(lambda: done.append("never"))  # after a failure nothing more runs
    with pytest.raises(ZeroDivisionError):
        writer.close()
    assert "never" not in done


def test_latest_frame_drops_what_arrives_while_the_consumer_is_busy():
    frames = iter(range(50))

    def read():
        time.sleep(0.002)  # a 500 frames/s source
        return next(frames, None)

    source = LatestFrame(read)
    taken = []
    while (frame := source.take(timeout=2)) is not None:
        taken.append(frame)
        time.sleep(0.02)  # a consumer ten times slower than the source
    assert taken[-1].image == 49 or source.offered == 50
    assert len(taken) < 25 and source.dropped > 25  # most frames were dropped, not queued
    assert [f.index for f in taken] == sorted({f.index for f in taken})  # newest first, never older
    assert sum(f.dropped for f in taken) + len(taken) <= 50


def test_latest_frame_raises_the_readers_error():
    def read():
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        LatestFrame(read).take(timeout=2)
