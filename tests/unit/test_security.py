"""Credentials reach every client: Kafka (aiokafka, kafka-python, Faust), Redis and Triton gRPC.

No secured broker, Redis or Triton runs here: each construction path is called with its client
class replaced by a recorder, and the test checks the keyword arguments it was given (and that
the real client classes accept those names).
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from pathlib import Path
from typing import Any

import pytest

from streamrec.core.config import Settings, UserError

SASL = {"bootstrap_servers": "broker:9093", "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "streamrec",
        "sasl_password": "s3cret"}


class Refused(Exception):
    """Raised by a recorder's start(): the test has what it wanted."""


class Recorder:
    """Stands in for a client class: records its constructor's keyword arguments."""

    calls: list[dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).calls.append(kwargs)

    async def start(self) -> None:
        raise Refused

    async def stop(self) -> None:
        pass

    async def close(self) -> None:
        pass


def recorder() -> type[Recorder]:
    return type("R", (Recorder,), {"calls": []})


@pytest.fixture
def secured(tmp_path: Path) -> Settings:
    return Settings.from_env(home=tmp_path, kafka=SASL, redis={"url": "redis://cache:6379/0"})


def assert_secured(kwargs: dict[str, Any]) -> None:
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "streamrec"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_kafka_security_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_USERNAME", "u")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_PASSWORD", "p")
    options = Settings.from_env().kafka.client_options()
    assert options == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                       "sasl_plain_username": "u", "sasl_plain_password": "p"}
    assert Settings.from_env(kafka={"security_protocol": "PLAINTEXT"}).kafka.client_options() == {}


def test_client_option_names_are_accepted_by_every_kafka_client(secured: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from kafka import KafkaConsumer

    names = set(secured.kafka.client_options())
    for cls in (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient):
        assert names <= set(inspect.signature(cls.__init__).parameters), cls
    assert names <= set(KafkaConsumer.DEFAULT_CONFIG)


def test_aiokafka_helpers_pass_the_credentials(
    secured: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's produce/tail/demo, the trainer and catalogue services and `forget` use these."""
    from streams import kafka_io

    for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"):
        monkeypatch.setattr(kafka_io, name, recorder())
    for call in (kafka_io.start_producer(secured), kafka_io.start_consumer(secured, "clicks"),
                 kafka_io.ensure_topics(secured)):
        with pytest.raises(Refused):
            asyncio.run(call)
    for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"):
        (kwargs,) = getattr(kafka_io, name).calls
        assert_secured(kwargs)


def test_worker_runtime_passes_kafka_and_redis_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams import runtime

    settings = Settings.from_env(home=tmp_path, kafka=SASL, redis={
        "url": "redis://cache:6379/0", "password": "r3dis", "username": "worker", "tls": True,
        "ssl_ca_certs": "/etc/ca.pem"})
    redis_calls: list[tuple[str, dict[str, Any]]] = []

    class FakeRedis:
        async def ping(self) -> bool:
            return True

        async def aclose(self) -> None:
            pass

    def from_url(url: str, **kwargs: Any) -> FakeRedis:
        redis_calls.append((url, kwargs))
        return FakeRedis()

    producer = recorder()
    monkeypatch.setattr(runtime.aioredis, "from_url", from_url)
    monkeypatch.setattr(runtime, "AIOKafkaProducer", producer)
    with pytest.raises(Refused):
        asyncio.run(runtime.WorkerRuntime.create(settings))
    ((url, kwargs),) = redis_calls
    assert url == "rediss://:r3dis@cache:6379/0"
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem" and kwargs["username"] == "worker"
    assert_secured(producer.calls[0])


def test_faust_gets_the_same_credentials(secured: Settings) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.components import faust_credentials

    assert_secured(dict(credentials_to_aiokafka_auth(faust_credentials(secured))))
    tls_only = secured.replace(kafka={"security_protocol": "SSL"})
    auth = credentials_to_aiokafka_auth(faust_credentials(tls_only))
    assert auth["security_protocol"] == "SSL"
    assert faust_credentials(secured.replace(kafka={"security_protocol": "PLAINTEXT"})) is None


def test_trainers_kafka_python_reader_gets_the_credentials(
    secured: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`streamrec train --dataset kafka` (training.pipeline) and the trainer service's reader."""
    import kafka

    from training.pipeline import load_dataset

    calls: list[dict[str, Any]] = []

    class FakeConsumer:
        def __init__(self, *topics: str, **kwargs: Any) -> None:
            calls.append(kwargs)

        def poll(self, **_: Any) -> dict[Any, Any]:
            return {}

        def assignment(self) -> set[int]:
            return {0}

        def close(self) -> None:
            pass

    monkeypatch.setattr(kafka, "KafkaConsumer", FakeConsumer)
    with pytest.raises(UserError, match="no valid click events"):
        load_dataset("kafka", settings=secured)
    (kwargs,) = calls
    assert_secured(kwargs)


def test_trainer_service_replays_clicks_with_the_credentials(
    secured: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from training import trainer_service

    reads: list[dict[str, Any]] = []

    class Consumer:
        async def getmany(self, **_: Any) -> dict[Any, Any]:
            return {}

        async def stop(self) -> None:
            pass

    async def started(*_: Any, **__: Any) -> Consumer:
        return Consumer()

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    def read(*args: Any, **kwargs: Any) -> list[Any]:
        reads.append(kwargs)
        return []

    monkeypatch.setattr(trainer_service, "ensure_topics", nothing)
    monkeypatch.setattr(trainer_service, "start_producer", started)
    monkeypatch.setattr(trainer_service, "start_consumer", started)
    monkeypatch.setattr(trainer_service, "read_clicks_from_kafka", read)
    counters = {"retrain": 0}
    trainer = SimpleNamespace(
        settings=secured, counters=counters, decisions=[], check_live=lambda: None,
        policy=SimpleNamespace(decide=lambda _elapsed: "schedule"),
        retrain=lambda reason, recent: counters.update(retrain=1), embed_texts=lambda: 0,
    )
    asyncio.run(trainer_service.TrainerService(trainer).run(max_retrains=1))
    (kwargs,) = reads
    assert_secured(kwargs["client_options"])


def test_redis_tls_and_acl_options(tmp_path: Path) -> None:
    plain = Settings.from_env(home=tmp_path, redis={"url": "redis://cache:6379/0"})
    assert plain.require_redis() == "redis://cache:6379/0" and plain.redis_options() == {}
    tls = plain.replace(redis={"tls": True, "ssl_ca_certs": "ca.pem", "ssl_certfile": "c.pem",
                               "ssl_keyfile": "k.pem"})
    assert tls.require_redis() == "rediss://cache:6379/0"
    assert tls.redis_options() == {"ssl_ca_certs": "ca.pem", "ssl_certfile": "c.pem",
                                   "ssl_keyfile": "k.pem", "ssl_cert_reqs": "required"}
    rediss = plain.replace(redis={"url": "rediss://cache:6380/0", "ssl_ca_certs": "ca.pem"})
    assert rediss.redis_options()["ssl_ca_certs"] == "ca.pem"
    # the options are what redis-py's TLS connection takes
    import redis

    pool = redis.ConnectionPool.from_url(tls.require_redis(), **tls.redis_options())
    assert pool.connection_class is redis.SSLConnection


def test_triton_grpc_tls_reaches_the_model_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tritonclient.grpc.aio as grpcclient

    from inference.client import ModelClient

    settings = Settings.from_env(home=tmp_path, triton={
        "url": "triton:8001", "grpc_ssl": True, "root_certificates": "/etc/ca.pem",
        "private_key": "/etc/client.key", "certificate_chain": "/etc/client.pem"})
    assert {"ssl", "root_certificates", "private_key", "certificate_chain"} <= set(
        inspect.signature(grpcclient.InferenceServerClient.__init__).parameters)
    calls: list[dict[str, Any]] = []

    class FakeTriton:
        def __init__(self, url: str, **kwargs: Any) -> None:
            calls.append(kwargs)

        async def get_model_repository_index(self, **_: Any) -> Any:
            raise ConnectionError("no Triton here")

        async def close(self) -> None:
            pass

    monkeypatch.setattr(grpcclient, "InferenceServerClient", FakeTriton)

    async def start_and_close() -> None:
        client = ModelClient.from_settings(settings)
        await client.start()
        await client.close()

    asyncio.run(start_and_close())
    (kwargs,) = calls
    assert kwargs["ssl"] is True
    assert kwargs["root_certificates"] == "/etc/ca.pem"
    assert kwargs["private_key"] == "/etc/client.key"
    assert kwargs["certificate_chain"] == "/etc/client.pem"
    plaintext = ModelClient.from_settings(settings.replace(triton={"grpc_ssl": False}))
    assert plaintext.config.grpc_options() == {}


def test_checkpoints_load_with_weights_only_and_refuse_pickled_objects(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from training.train import read_checkpoint

    plain = tmp_path / "plain.pt"
    torch.save({"state": {"w": torch.zeros(2)}, "vocab": {"items": ["a"]}, "valid": 0.5}, plain)
    assert read_checkpoint(plain)["vocab"] == {"items": ["a"]}
    hostile = tmp_path / "hostile.pt"
    torch.save({"state": {}, "payload": Path("/etc/passwd")}, hostile)  # a pickled object
    with pytest.raises(UserError, match="not a plain checkpoint"):
        read_checkpoint(hostile)
