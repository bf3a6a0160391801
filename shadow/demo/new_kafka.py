"""The reference new engine's Kafka mode: commands from a topic, outcomes to another.

This is how the real new engine is built (services talking over Kafka). The
HTTP application keeps serving reads (GET /loads/{id}) and /health; commands
arrive on the commands topic and each answer is published on the outcomes topic
with the command's dispatch token, idempotent on that token like the HTTP mode.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import orjson
from aiohttp import web

from adapters.kafka import ensure_topics, outcome_message
from shadow.config import KafkaTarget
from shadow.demo.new import DispatchEngine
from shadow.demo.roster import (AssignLoad, CancelLoad, CreateLoad, DispatchError, ReassignLoad, UpdateStopEta,
                                decode_body)

__all__ = ["attach_kafka", "apply_command"]


def apply_command(engine: DispatchEngine, command: dict[str, Any]) -> tuple[int, Any]:
    """Run one command (the JSON of a shadow.model.Command) on the engine: (HTTP-like status, answer)."""
    kind, keys = command.get("kind"), command.get("keys") or {}
    raw = orjson.dumps(command.get("payload"))
    runs: dict[str, tuple[int, Callable[[], Any]]] = {
        "create_load": (201, lambda: engine.create(decode_body(raw, CreateLoad))),
        "assign_load": (200, lambda: engine.assign(keys["load_id"], decode_body(raw, AssignLoad))),
        "reassign_load": (200, lambda: engine.reassign(keys["load_id"], decode_body(raw, ReassignLoad))),
        "cancel_load": (200, lambda: engine.cancel(keys["load_id"], decode_body(raw, CancelLoad))),
        "update_stop_eta": (200, lambda: engine.update_eta(keys["load_id"], int(keys["seq"]),
                                                         decode_body(raw, UpdateStopEta))),
    }
    if kind not in runs:
        return 400, {"error": f"unknown command kind {kind!r}"}
    status, run = runs[kind]
    try:
        return status, run()
    except DispatchError as exc:
        return exc.status, {"error": exc.message}
    except (KeyError, ValueError) as exc:
        return 400, {"error": f"bad command: {type(exc).__name__}: {exc}"}


def attach_kafka(app: web.Application, engine: DispatchEngine, answered: dict[str, tuple[int, Any]],
                 kafka: KafkaTarget) -> None:
    """Consume commands for the app's engine while the app runs; publish each outcome."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    async def start(_app: web.Application) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_topics, kafka.bootstrap, {kafka.commands: 4, kafka.outcomes: 4})
        producer = await asyncio.to_thread(KafkaProducer, bootstrap_servers=kafka.bootstrap, linger_ms=2)
        consumer = await asyncio.to_thread(KafkaConsumer, bootstrap_servers=kafka.bootstrap, group_id=None,
                                           enable_auto_commit=False)
        partitions = [TopicPartition(kafka.commands, p) for p in consumer.partitions_for_topic(kafka.commands) or {0}]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for partition in partitions:
            consumer.position(partition)  # listening from now on, before /health says ready

        async def handle(value: bytes) -> tuple[str, bytes] | None:
            try:
                command = orjson.loads(value)["command"]
                token = str(command["token"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return None
            if token not in answered:
                status, doc = apply_command(engine, command)
                if status < 400:
                    answered[token] = (status, doc)
            else:
                status, doc = answered[token]
            return token, outcome_message(token, status, doc)

        def consume() -> None:
            try:
                while not stop.is_set():
                    for records in consumer.poll(timeout_ms=100).values():
                        for record in records:
                            # The engine is not thread-safe: every command runs on the app's loop, in order.
                            result = asyncio.run_coroutine_threadsafe(handle(record.value), loop).result()
                            if result is not None:
                                producer.send(kafka.outcomes, key=result[0].encode(), value=result[1])
                    producer.flush()
            finally:
                consumer.close()
                producer.close()

        thread = threading.Thread(target=consume, daemon=True, name="new-engine-commands")
        threads.append(thread)
        thread.start()

    async def stop_consuming(_app: web.Application) -> None:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 5)

    app.on_startup.append(start)
    app.on_cleanup.append(stop_consuming)
