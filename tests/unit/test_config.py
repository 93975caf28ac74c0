"""The typed configuration: where values come from, one-line errors, masked secrets, and the
worker's components built from it."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from streamrec.cli import main
from streamrec.cli.config import section_with_options
from streamrec.core.config import Settings, UserError
from streams.components import (
    build_drift_detector,
    build_reranker,
    drift_config,
    engine_config,
    rerank_config,
)
from streams.drift import DriftConfig
from streams.engine import EngineConfig
from streams.rerank.reranker import RerankConfig

CONVENTIONAL = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "TRITON_URL")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No STREAMREC_* or conventional variable from the caller; an empty home."""
    for name in list(os.environ):
        if name.startswith("STREAMREC_") or name in CONVENTIONAL:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("STREAMREC_HOME", str(home))
    return home


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_nested_variable_sets_its_field_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_WORKER__BATCH_SIZE", "128")
    settings = Settings.from_env()
    assert settings.worker.batch_size == 128
    assert settings.origin("worker.batch_size") == "STREAMREC_WORKER__BATCH_SIZE"
    assert settings.origin("worker.app_id") == "default"


def test_conventional_address_selects_the_kafka_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    settings = Settings.from_env()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.kafka.profile == "kafka"
    assert settings.kafka.broker["topic_partitions"] == 12
    assert settings.redis.url == "redis://cache:6379/0"
    assert settings.origin("kafka.bootstrap_servers") == "KAFKA_BOOTSTRAP_SERVERS"
    # the STREAMREC_ name is the more specific one
    monkeypatch.setenv("STREAMREC_KAFKA__BOOTSTRAP_SERVERS", "other:9092")
    assert Settings.from_env().kafka.bootstrap_servers == "other:9092"


def test_config_file_is_read_and_the_environment_beats_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "streamrec.toml"
    config.write_text('[worker]\nbatch_size = 32\napp_id = "from-file"\n'
                      '[kafka]\nclicks_topic = "clicks-file"\n')
    monkeypatch.setenv("STREAMREC_CONFIG", str(config))
    monkeypatch.setenv("STREAMREC_WORKER__BATCH_SIZE", "256")
    settings = Settings.from_env()
    assert settings.worker.batch_size == 256
    assert settings.worker.app_id == "from-file"
    assert settings.kafka.clicks_topic == "clicks-file"
    assert settings.origin("worker.app_id") == f"{config}: [worker] app_id"
    # overrides win over both
    assert Settings.from_env(worker={"batch_size": 8}).worker.batch_size == 8


def test_a_missing_config_file_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMREC_CONFIG", str(tmp_path / "nope.toml"))
    assert "STREAMREC_CONFIG=" in one_error_line(capsys, ["config"])


def test_bad_file_value_names_the_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "streamrec.toml"
    config.write_text('[engine]\nk = "many"\n')
    expected = r"streamrec.toml: \[engine\] k='many': expected an integer"
    with pytest.raises(UserError, match=expected):
        Settings.from_env(config_file=config)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("STREAMREC_WORKER__BATCH_SIZE", "abc",
     "STREAMREC_WORKER__BATCH_SIZE='abc': expected an integer"),
    ("STREAMREC_KAFKA__PROFILE", "prod",
     "STREAMREC_KAFKA__PROFILE='prod': expected one of embedded, kafka"),
    ("STREAMREC_WORKER__BATCH_SIZE", "0",
     "STREAMREC_WORKER__BATCH_SIZE='0': expected a number >= 1"),
    ("STREAMREC_WORKER__BATCHSIZE", "3", "STREAMREC_WORKER__BATCHSIZE: no such setting"),
    ("STREAMREC_WORKER_BATCH_SIZE", "3",
     "STREAMREC_WORKER_BATCH_SIZE is no longer read: set STREAMREC_WORKER__BATCH_SIZE"),
    ("STREAMREC_PROFILE", "kafka",
     "STREAMREC_PROFILE is no longer read: set STREAMREC_KAFKA__PROFILE"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    variable: str, value: str, expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    line = one_error_line(capsys, ["config"])
    assert line.startswith("streamrec config: error: ")
    assert expected in line
    assert "Traceback" not in line


def test_secrets_are_masked_in_streamrec_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("STREAMREC_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STREAMREC_REDIS__PASSWORD", "s3cret")
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert main(["config", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for shown in (text, json.dumps(report)):
        assert "hunter2" not in shown and "s3cret" not in shown
    assert "**********" in text
    assert report["settings"]["kafka"]["sasl_password"] == "**********"
    assert report["settings"]["redis"]["password"] == "**********"
    assert report["origins"]["kafka.sasl_username"] == "STREAMREC_KAFKA__SASL_USERNAME"
    # ... while the clients get the real ones
    settings = Settings.from_env()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "hunter2"


def test_the_embedded_stack_fills_unset_addresses(clean_environment: Path) -> None:
    clean_environment.mkdir()
    (clean_environment / "stack.json").write_text(json.dumps(
        {"kafka": "127.0.0.1:1111", "redis": "redis://127.0.0.1:2222/0",
         "triton_grpc": "127.0.0.1:3333"}))
    settings = Settings.from_env()
    assert settings.kafka.bootstrap_servers is None
    resolved = settings.resolved()
    assert resolved.kafka.bootstrap_servers == "127.0.0.1:1111"
    assert resolved.kafka.profile == "embedded"
    assert resolved.triton.url == "127.0.0.1:3333"
    assert resolved.origin("redis.url") == str(clean_environment / "stack.json")
    assert settings.require_kafka() == "127.0.0.1:1111"
    with_password = settings.replace(redis={"password": "p@ss"})
    assert with_password.require_redis() == "redis://:p%40ss@127.0.0.1:2222/0"


def test_no_address_anywhere_is_a_user_error() -> None:
    with pytest.raises(UserError, match="KAFKA_BOOTSTRAP_SERVERS"):
        Settings.from_env().require_kafka()


def test_reranker_and_drift_detector_are_built_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMREC_RERANKER__LR", "0.2")
    monkeypatch.setenv("STREAMREC_RERANKER__OPTIMIZER", "adam")
    monkeypatch.setenv("STREAMREC_ENGINE__INTEREST_HALF_LIFE_MS", "60000")
    monkeypatch.setenv("STREAMREC_DRIFT__COOLDOWN", "7")
    monkeypatch.setenv("STREAMREC_TRITON__TIMEOUT_S", "0.5")
    settings = Settings.from_env()
    reranker = build_reranker(settings)
    assert reranker.config.lr == 0.2
    assert reranker.config.optimizer == "adam"
    assert reranker.config.interest_half_life_ms == 60_000  # the engine's, one value
    assert build_drift_detector(settings).config.cooldown == 7
    engine = engine_config(settings)
    assert engine.model_timeout_s == 0.5
    assert engine.state.interest_half_life_ms == 60_000


def test_sections_mirror_the_components_they_configure() -> None:
    """A field added to a component's config without a setting (or defaults that disagree)
    would let the worker run on values `streamrec config` does not show."""
    from inference.client import ClientConfig

    defaults = Settings.from_env()
    assert {f.name for f in fields(RerankConfig)} == \
        set(type(defaults.reranker).model_fields) | {"interest_half_life_ms"}
    assert asdict(rerank_config(defaults)) == asdict(RerankConfig())
    assert asdict(drift_config(defaults)) == asdict(DriftConfig())
    assert engine_config(defaults) == EngineConfig()
    client_fields = {f.name: f.default for f in fields(ClientConfig)}
    for name, value in defaults.client.model_dump().items():
        assert client_fields[name] == value, name


def test_command_options_fall_back_to_their_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_REPLAY__EVENTS", "5000")
    replay = Settings.from_env().replay
    given = section_with_options(replay, argparse.Namespace(events=None, warm=100, seeds=None))
    assert (given.events, given.warm, given.seeds) == (5000, 100, [0, 1, 2])
    with pytest.raises(UserError, match="--batch-size=0"):
        section_with_options(replay, argparse.Namespace(batch_size=0))
