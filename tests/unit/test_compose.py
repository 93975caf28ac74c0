"""docker-compose.yml can't run here (no Docker engine): check what it declares."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamrec.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_services_are_declared() -> None:
    assert {"kafka", "redis", "worker", "producer", "triton", "triton-cpu", "topics", "trainer",
            "catalog"} <= set(SERVICES)


def test_kafka_is_apache_kafka_in_kraft_mode_with_12_partitions() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert int(env["KAFKA_NUM_PARTITIONS"]) >= 12
    assert "healthcheck" in kafka


def test_health_checks_gate_the_worker() -> None:
    for name in ("kafka", "redis", "triton", "triton-cpu"):
        assert SERVICES[name]["healthcheck"]["test"], name
    deps = SERVICES["worker"]["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["triton"] == {"condition": "service_healthy", "required": False}
    assert deps["topics"]["condition"] == "service_completed_successfully"


def test_worker_is_scalable_and_configured_for_real_kafka() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=3
    env = worker["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["STREAMREC_KAFKA__PROFILE"] == "kafka"
    assert env["TRITON_URL"] == "triton:8001"


def test_triton_has_a_gpu_reservation_and_a_cpu_profile() -> None:
    gpu = SERVICES["triton"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "./model_repository:/models" in gpu["volumes"]
    assert "--model-control-mode=poll" in gpu["command"]
    assert (REPO / gpu["build"]["dockerfile"]).exists()
    assert "/v2/models/sasrec/ready" in gpu["healthcheck"]["test"][1]
    cpu = SERVICES["triton-cpu"]
    assert "deploy" not in cpu and "--model-config-name=cpu" in cpu["command"]
    assert cpu["hostname"] == "triton"


def test_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name in ("worker", "producer", "topics"):
        args = parser.parse_args(SERVICES[name]["command"][1:])
        assert callable(args.func), name


def test_model_versions_have_exactly_one_trainer_and_one_catalogue_publisher() -> None:
    parser = build_parser()
    for name, command in (("trainer", "trainer"), ("catalog", "catalog")):
        service = SERVICES[name]
        assert service["command"][1] == command
        assert callable(parser.parse_args(service["command"][1:]).func), name
        assert service["deploy"]["replicas"] == 1, name
        assert "./model_repository:/models" in service["volumes"], name  # they publish
    # the workers only follow versions: they cannot write the repository
    assert "./model_repository:/models:ro" in SERVICES["worker"]["volumes"]


def test_topic_profile_for_kafka_has_12_partitions() -> None:
    from streamrec.core.config import KAFKA_PROFILE

    assert KAFKA_PROFILE["topic_partitions"] >= 12
    assert (REPO / "Dockerfile").exists()
