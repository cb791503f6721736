import pytest

from dpro_migrate.db.pgcopy import prefetched


def test_prefetched_keeps_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(100)), depth=2)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("source read failed")

    with pytest.raises(ValueError, match="source read failed"):
        list(prefetched(broken()))


def test_prefetched_stops_its_thread_when_the_consumer_stops():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    gen = prefetched(endless(), depth=2)
    assert next(gen) == 0
    gen.close()  # the COPY failed: the reader must not hang or run on
    assert len(produced) < 10
