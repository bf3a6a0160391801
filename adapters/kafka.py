"""Kafka: a target reached the way the new engine is built, and a transport for pairs.

Messages are versioned JSON. A command is published with its dispatch token as
key; the target answers on an outcomes topic with the same token, which is how
the answer is found again (correlation id). kafka-python is synchronous, so its
consumers run in threads and hand results to the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import msgspec
import orjson

from shadow.config import KafkaTarget as KafkaTargetConfig
from shadow.errors import TargetError
from shadow.model import Command, Outcome, Pair, Status, Target, to_json

__all__ = ["KafkaTarget", "KafkaPairs", "ensure_topics", "check_brokers", "command_message", "outcome_message", "VERSION",
           "lazy_delivery"]

VERSION = 1


def command_message(command: Command) -> bytes:
    """A command as the commands topic carries it."""
    return b'{"v":%d,"command":%s}' % (VERSION, to_json(command))


def outcome_message(token: str, status: int, response: Any) -> bytes:
    """An answer as a target publishes it on the outcomes topic."""
    return orjson.dumps({"v": VERSION, "token": token, "status": status, "response": response})


def check_brokers(bootstrap: str, timeout: float = 3.0) -> None:
    """A TargetError naming the brokers when none of them accepts a connection (kafka-python would retry on)."""
    import socket

    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError):
            continue
    raise TargetError(f"Kafka brokers {bootstrap} cannot be reached", hint="check the bootstrap HOST:PORT in the config "
                                                                           "and that the brokers run")


def ensure_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create topics (name → partitions) that do not exist yet."""
    from kafka.admin import KafkaAdminClient, NewTopic

    check_brokers(bootstrap)
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="shadow-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()
                  if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class KafkaTarget:
    """A CommandTarget over Kafka: publish, then await the outcome with the same token."""

    def __init__(self, target: Target, config: KafkaTargetConfig, *, timeout: float) -> None:
        self.target = target
        self.config = config
        self.timeout = timeout
        self._pending: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Connect, and listen on the outcomes topic from its end (answers to earlier runs are not ours)."""
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.errors import KafkaError

        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(ensure_topics, self.config.bootstrap, {self.config.commands: 4,
                                                                           self.config.outcomes: 4})
            self._producer = await asyncio.to_thread(KafkaProducer, bootstrap_servers=self.config.bootstrap,
                                                     linger_ms=2, acks=1)
            consumer = await asyncio.to_thread(KafkaConsumer, bootstrap_servers=self.config.bootstrap,
                                               enable_auto_commit=False, group_id=None)
        except KafkaError as exc:
            raise TargetError(f"{self.target.value} over Kafka: brokers {self.config.bootstrap} cannot be reached: "
                              f"{type(exc).__name__}", hint="check [targets.*.kafka] bootstrap") from None
        partitions = [TopicPartition(self.config.outcomes, p)
                      for p in (consumer.partitions_for_topic(self.config.outcomes) or {0})]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for partition in partitions:
            consumer.position(partition)  # resolve the end now, before any command is sent
        self._thread = threading.Thread(target=self._listen, args=(consumer,), daemon=True,
                                        name=f"kafka-outcomes-{self.target.value}")
        self._thread.start()

    def _listen(self, consumer: Any) -> None:
        try:
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=100).values():
                    for record in records:
                        try:
                            message = orjson.loads(record.value)
                            answer = (int(message["status"]), message.get("response"))
                            token = str(message["token"])
                        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                            continue  # not an answer we can read: it cannot be ours
                        assert self._loop is not None
                        self._loop.call_soon_threadsafe(self._resolve, token, answer)
        finally:
            consumer.close()

    def _resolve(self, token: str, answer: tuple[int, Any]) -> None:
        future = self._pending.pop(token, None)
        if future is not None and not future.done():
            future.set_result(answer)

    async def send(self, command: Command) -> Outcome:
        """Publish the command; its outcome is the answer that comes back with its token, or a timeout."""
        if self._producer is None:
            await self.start()
        token = command.token or ""
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        started = time.perf_counter()
        try:
            self._producer.send(self.config.commands, key=token.encode(), value=command_message(command))
            status, response = await asyncio.wait_for(future, timeout=self.timeout)
        except asyncio.TimeoutError:
            self._pending.pop(token, None)
            return Outcome(target=self.target, status=Status.TIMEOUT, latency_ms=(time.perf_counter() - started) * 1000,
                           error=f"no outcome on {self.config.outcomes} within {self.timeout:g}s")
        except Exception as exc:  # a producer error is this command's outcome, not a crash
            self._pending.pop(token, None)
            return Outcome(target=self.target, status=Status.ERROR, latency_ms=(time.perf_counter() - started) * 1000,
                           error=f"publishing to {self.config.commands} failed: {type(exc).__name__}: {exc}")
        return Outcome(target=self.target, status=Status.OK if status < 400 else Status.ERROR, http_status=status,
                       response=response, latency_ms=(time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        """Stop listening and flush the producer."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        if self._producer is not None:
            await asyncio.to_thread(self._producer.close, 5)


BATCH_BYTES = 256 * 1024


class KafkaPairs:
    """A PairSink publishing pairs to a topic (key = dispatch token, versioned JSON)."""

    def __init__(self, bootstrap: str, topic: str, *, partitions: int = 4) -> None:
        from kafka import KafkaProducer

        ensure_topics(bootstrap, {topic: partitions})
        self.topic = topic
        # A broker that is down must not hold a sending thread for the default minute. A record batch of up to
        # 256 KiB per partition holds a whole hand-over from the proxy's sink (the default 16 KiB holds five
        # 2.8 KB pairs): fewer, larger batches for the broker to store, index and serve.
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_block_ms=5000,
                                       request_timeout_ms=5000, reconnect_backoff_max_ms=1000,
                                       batch_size=BATCH_BYTES)
        self.written = 0

    def write(self, pair: Pair) -> None:
        """Publish one pair (buffered by the producer)."""
        self._producer.send(self.topic, key=(pair.token or "").encode(), value=pair_message(pair))
        self.written += 1

    def deliver(self, pairs: list[Pair], *, timeout: float = 10.0) -> None:
        """Publish pairs and wait until the broker acknowledged every one; raises when it did not."""
        futures = [self._producer.send(self.topic, key=(p.token or "").encode(), value=pair_message(p)) for p in pairs]
        self._producer.flush(timeout=timeout)
        for future in futures:
            if not future.is_done:
                raise TimeoutError(f"the broker did not acknowledge {self.topic} within {timeout:g} s")
            if future.exception is not None:
                raise future.exception
        self.written += len(pairs)

    def close(self) -> None:
        """Wait for every pair to be acknowledged."""
        self._producer.flush()
        self._producer.close()


def pair_message(pair: Pair) -> bytes:
    """A pair as the pairs topic carries it."""
    return b'{"v":%d,"pair":%s}' % (VERSION, to_json(pair))


_PAIR_MESSAGE = msgspec.json.Decoder(msgspec.defstruct("PairMessage", [("v", int), ("pair", Pair)]))


def read_pair_message(value: bytes) -> Pair:
    """The pair in a pairs-topic message (msgspec.ValidationError / DecodeError when it is not one)."""
    return _PAIR_MESSAGE.decode(value).pair


def lazy_delivery(bootstrap: str, topic: str) -> Callable[[list[Pair]], None]:
    """A delivery function for DegradingSink: connects on first use, so a broker down at start only delays."""
    found: list[KafkaPairs] = []

    def deliver(pairs: list[Pair]) -> None:
        if not found:
            found.append(KafkaPairs(bootstrap, topic))
        found[0].deliver(pairs)

    return deliver
