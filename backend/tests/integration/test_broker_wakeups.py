"""The PostgreSQL broker's wake-ups (app.worker.broker): a publish notifies in the transaction that
stores the message, and a waiting consumer returns on the notification instead of at the end of its
polling interval; and its one-statement take delivers each message once, oldest first, passing over
one another consumer holds. Real PostgreSQL, real kombu; the queue latency they buy is measured by
scripts/bench/queue_honesty.py against polling alone, in the same run."""

from __future__ import annotations

import threading
import time
import uuid
from queue import Empty
from typing import Any

import psycopg
import pytest
from kombu import Connection

from app.worker import broker
from scripts.topology import Topology

LONG_WAIT_S = 5.0


def engine_url(topology: Topology) -> str:
    assert topology.dsns is not None
    return topology.dsns.broker.removeprefix("sqla+")


def publish(topology: Topology, queue: str) -> None:
    broker.install()
    assert topology.dsns is not None
    with Connection(broker.broker_url(topology.dsns.broker, wakeups=True)) as conn:
        conn.SimpleQueue(queue).put({"probe": queue})


def test_a_publish_notifies_after_its_message_is_stored(topology: Topology) -> None:
    queue = f"wakeup-{uuid.uuid4().hex[:8]}"
    publish(topology, queue)  # the first message to a queue creates it; measure the second one
    with psycopg.connect(broker.listener_dsn(engine_url(topology)), autocommit=True) as listener:
        listener.execute(f"LISTEN {broker.WAKEUP_CHANNEL}")
        publish(topology, queue)
        notified = list(listener.notifies(timeout=LONG_WAIT_S, stop_after=1))
        assert [n.channel for n in notified] == [broker.WAKEUP_CHANNEL]
        stored = listener.execute(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s",
            (queue,),
        ).fetchone()
    assert stored is not None and stored[0] == 2  # visible when the consumer wakes


def test_a_waiting_consumer_wakes_on_a_notification(topology: Topology) -> None:
    wakeups = broker.Wakeups(broker.listener_dsn(engine_url(topology)))
    try:
        wakeups.wait(0.01)  # connect and LISTEN first
        threading.Timer(0.3, publish, (topology, f"wakeup-{uuid.uuid4().hex[:8]}")).start()
        started = time.monotonic()
        wakeups.wait(LONG_WAIT_S)
        assert time.monotonic() - started < LONG_WAIT_S / 2
    finally:
        wakeups.close()


def test_control_without_a_notification_the_wait_lasts_its_interval(topology: Topology) -> None:
    wakeups = broker.Wakeups(broker.listener_dsn(engine_url(topology)))
    try:
        wakeups.wait(0.01)
        started = time.monotonic()
        wakeups.wait(0.5)
        assert time.monotonic() - started >= 0.45
    finally:
        wakeups.close()


def test_an_unreachable_listener_falls_back_to_polling() -> None:
    wakeups = broker.Wakeups("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    started = time.monotonic()
    wakeups.wait(0.3)  # no exception: the interval is slept instead
    assert time.monotonic() - started >= 0.29


def test_without_wakeups_kombu_polls_as_before() -> None:
    from kombu import transport

    url = "sqla+postgresql://app_user@localhost/db"
    broker.install()
    assert broker.broker_url(url, wakeups=False) == url
    assert transport.resolve_transport(broker.broker_url(url, wakeups=True).split("+")[0]) is broker.NotifiedTransport
    assert broker.broker_url("amqp://guest@localhost//", wakeups=True) == "amqp://guest@localhost//"


def take(topology: Topology, queue: str) -> Any:
    """One message from the queue through the wake-up transport's own ``_get``, or Empty."""
    assert topology.dsns is not None
    with Connection(broker.broker_url(topology.dsns.broker, wakeups=True)) as conn:
        return conn.default_channel._get(queue)


def published(topology: Topology, queue: str, count: int) -> list[dict[str, str]]:
    assert topology.dsns is not None
    broker.install()
    with Connection(broker.broker_url(topology.dsns.broker, wakeups=True)) as conn:
        channel = conn.default_channel
        for n in range(count):
            channel._put(queue, {"n": str(n)})
    return [{"n": str(n)} for n in range(count)]


def test_messages_are_taken_oldest_first_each_once_by_racing_consumers(topology: Topology) -> None:
    queue = f"take-{uuid.uuid4().hex[:8]}"
    sent = published(topology, queue, 40)
    taken: list[dict[str, str]] = []

    def consume() -> None:
        while True:
            try:
                taken.append(take(topology, queue))
            except Empty:
                return

    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for thread in consumers:
        thread.start()
    for thread in consumers:
        thread.join(timeout=60)
    assert sorted(taken, key=lambda m: int(m["n"])) == sent  # every message, none twice
    with psycopg.connect(broker.listener_dsn(engine_url(topology))) as conn:
        unstamped = conn.execute(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id"
            " WHERE q.name = %s AND (m.visible OR m.timestamp IS NULL)",
            (queue,),
        ).fetchone()
    assert unstamped == (0,)  # all taken, each stamped: housekeeping's retention counts from that


def test_messages_are_taken_oldest_first_whatever_their_place_on_disk(topology: Topology) -> None:
    """The first two messages are rewritten in place (an UPDATE writes a new row version at the
    table's end), so a take without its ORDER BY would find the third one first."""
    queue = f"order-{uuid.uuid4().hex[:8]}"
    sent = published(topology, queue, 5)
    with psycopg.connect(broker.listener_dsn(engine_url(topology)), autocommit=True) as conn:
        conn.execute(
            "UPDATE kombu_message SET payload = payload WHERE id IN (SELECT m.id FROM kombu_message m"
            " JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s ORDER BY m.id LIMIT 2)",
            (queue,),
        )
    assert [take(topology, queue) for _ in range(5)] == sent


def test_a_message_another_consumer_holds_is_passed_over_not_waited_for(topology: Topology) -> None:
    queue = f"take-{uuid.uuid4().hex[:8]}"
    published(topology, queue, 2)
    with psycopg.connect(broker.listener_dsn(engine_url(topology))) as holder:
        holder.execute(
            "SELECT m.id FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE q.name = %s"
            " ORDER BY m.timestamp, m.id LIMIT 1 FOR UPDATE OF m",
            (queue,),
        )
        started = time.monotonic()
        assert take(topology, queue) == {"n": "1"}  # the second: the first is being taken elsewhere
        assert time.monotonic() - started < LONG_WAIT_S / 2
        with pytest.raises(Empty):
            take(topology, queue)
        holder.rollback()  # the holder let go without taking it: it is there for the next look
    assert take(topology, queue) == {"n": "0"}


def test_a_consumer_whose_prefetch_is_used_up_is_full_until_it_acks(topology: Topology) -> None:
    """While full, the transport looks again every FULL_RECHECK_S (no query) instead of waiting out
    its polling interval for a notification that will not come."""
    queue = f"full-{uuid.uuid4().hex[:8]}"
    publish(topology, queue)
    publish(topology, queue)
    assert topology.dsns is not None
    with Connection(broker.broker_url(topology.dsns.broker, wakeups=True)) as conn:
        simple = conn.SimpleQueue(queue)
        simple.consumer.qos(prefetch_count=1)
        transport = conn.transport
        assert not transport.full()
        message = simple.get(timeout=LONG_WAIT_S)
        assert transport.full()
        message.ack()
        assert not transport.full()
        simple.get(timeout=LONG_WAIT_S).ack()
        simple.close()
