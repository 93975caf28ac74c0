"""docker-compose.yml can't run here (no Docker engine): check what it declares."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import yaml

from streamrec.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((REPO / "docker/prometheus.yml").read_text())
ALERTS = yaml.safe_load((REPO / "docker/prometheus-alerts.yml").read_text())
DASHBOARD = json.loads((REPO / "docker/grafana/dashboards/streamrec.json").read_text())

# one-shot jobs: their exit code is their health; everything else runs and is health-checked
ONE_SHOT = {"topics", "bootstrap", "producer"}


def interpolate(value: Any) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def names_on_the_network() -> set[str]:
    """Service names and network aliases: the names other containers resolve."""
    names = set(SERVICES)
    for service in SERVICES.values():
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                names.update((network or {}).get("aliases", []))
    return names


def test_services_are_declared() -> None:
    assert {"kafka", "redis", "worker", "producer", "triton", "triton-cpu", "topics", "trainer",
            "catalog", "bootstrap", "prometheus", "grafana"} <= set(SERVICES)


def test_kafka_is_apache_kafka_in_kraft_mode_with_12_partitions_by_default() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert int(interpolate(env["KAFKA_NUM_PARTITIONS"])) >= 12
    assert "healthcheck" in kafka


def test_partitions_and_replication_are_configurable_from_the_environment() -> None:
    shared = SERVICES["worker"]["environment"]
    kafka = SERVICES["kafka"]["environment"]
    for value in (shared["STREAMREC_KAFKA__PARTITIONS"], kafka["KAFKA_NUM_PARTITIONS"]):
        assert value == "${STREAMREC_PARTITIONS:-12}"
    for value in (shared["STREAMREC_KAFKA__REPLICATION_FACTOR"],
                  kafka["KAFKA_DEFAULT_REPLICATION_FACTOR"],
                  kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]):
        assert value == "${STREAMREC_REPLICATION:-1}"
    # the settings the workers and `streamrec topics` read accept them
    from streamrec.core.config import Settings

    settings = Settings.from_env(kafka={
        "partitions": int(interpolate(shared["STREAMREC_KAFKA__PARTITIONS"])),
        "replication_factor": int(interpolate(shared["STREAMREC_KAFKA__REPLICATION_FACTOR"])),
        "profile": "kafka",
    })
    assert settings.kafka.broker["topic_partitions"] == 12
    assert settings.kafka.replication_factor == 1


def test_every_service_has_a_restart_policy_and_a_health_check() -> None:
    for name, service in SERVICES.items():
        assert "restart" in service, name
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if name in ONE_SHOT:
            assert check == {"disable": True}, name
            assert service["restart"] in ("on-failure", "no"), name
        else:
            assert check["test"] and not check.get("disable"), name
            assert service["restart"] in ("unless-stopped", "always"), name


def test_one_shot_jobs_gate_what_needs_them() -> None:
    deps = SERVICES["worker"]["depends_on"]
    assert deps["topics"]["condition"] == "service_completed_successfully"
    for name in ("trainer", "catalog", "producer"):
        assert SERVICES[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"), name


def test_the_worker_health_check_is_its_own_health_endpoint() -> None:
    worker = SERVICES["worker"]
    env = worker["environment"]
    port = env["STREAMREC_OBSERVABILITY__PORT"]
    assert env["STREAMREC_OBSERVABILITY__HOST"] == "0.0.0.0"  # Prometheus scrapes it
    assert f"127.0.0.1:{port}/health" in " ".join(worker["healthcheck"]["test"])
    assert "ports" not in worker  # --scale worker=3: nothing published on the host
    scrape = PROMETHEUS["scrape_configs"][0]["dns_sd_configs"][0]
    assert scrape["names"] == ["worker"] and scrape["port"] == port


def test_health_checks_gate_the_worker_but_triton_only_has_to_be_started() -> None:
    deps = SERVICES["worker"]["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    # no model version yet (a fresh clone): the workers answer from the fallback meanwhile
    for name in ("triton", "triton-cpu"):
        assert deps[name] == {"condition": "service_started", "required": False}
        assert "/v2/health/live" in SERVICES[name]["healthcheck"]["test"][1]


def test_every_address_in_the_environment_names_a_service_or_alias() -> None:
    resolvable = names_on_the_network()
    checked = 0
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if not (key.endswith("_URL") or key.endswith("BOOTSTRAP_SERVERS")):
                continue
            for address in interpolate(value).split(","):
                host = urlsplit(address if "://" in address else f"//{address}").hostname
                assert host in resolvable, f"{name}: {key}={value} names no service"
                checked += 1
    datasource = yaml.safe_load(
        (REPO / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert urlsplit(datasource["datasources"][0]["url"]).hostname in resolvable
    for target in PROMETHEUS["scrape_configs"][0]["dns_sd_configs"][0]["names"]:
        assert target in resolvable
    assert checked >= 8


def test_the_cpu_triton_answers_to_the_name_the_workers_use() -> None:
    cpu = SERVICES["triton-cpu"]
    assert "hostname" not in cpu  # a hostname is not a name other containers resolve
    assert "triton" in cpu["networks"]["default"]["aliases"]
    assert SERVICES["worker"]["environment"]["TRITON_URL"] == "triton:8001"


def test_triton_has_a_gpu_reservation_and_a_cpu_profile_and_starts_without_a_model() -> None:
    gpu = SERVICES["triton"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert (REPO / gpu["build"]["dockerfile"]).exists()
    cpu = SERVICES["triton-cpu"]
    assert "deploy" not in cpu and "--model-config-name=cpu" in cpu["command"]
    for service in (gpu, cpu):
        assert "./model_repository:/models" in service["volumes"]
        assert "--model-control-mode=poll" in service["command"]
        assert "--exit-on-error=false" in service["command"]  # no version yet is not fatal
    # the bootstrap job publishes a first version into the repository Triton polls
    bootstrap = SERVICES["bootstrap"]
    assert "./model_repository:/models" in bootstrap["volumes"]
    assert bootstrap["build"]["args"]["EXTRAS"] == "[train]"


def test_worker_identity_is_unique_per_container() -> None:
    worker = SERVICES["worker"]
    # every replica is PID 1 in its own container: the identity is hostname:pid, so the
    # containers must keep their own (distinct) hostnames
    assert "hostname" not in worker and "container_name" not in worker
    from streams.runtime import worker_identity

    assert worker_identity(1, "a1b2c3") != worker_identity(1, "d4e5f6")


def test_streams_never_key_anything_by_the_bare_pid() -> None:
    for path in (REPO / "streams").rglob("*.py"):
        for line in path.read_text().splitlines():
            if "os.getpid()" in line:
                assert "worker_identity" in line or "host or" in line or '"pid"' in line, (
                    f"{path.name}: {line.strip()}")


def test_kafka_redis_prometheus_and_grafana_keep_their_data_in_named_volumes() -> None:
    declared = set(COMPOSE["volumes"])
    mounts = {
        "kafka": "/var/lib/kafka/data", "redis": "/data", "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, path in mounts.items():
        volumes = {v.split(":")[0]: v.split(":")[1] for v in SERVICES[name]["volumes"]}
        named = [source for source, target in volumes.items() if target == path]
        assert named and named[0] in declared, name
    assert SERVICES["kafka"]["environment"]["KAFKA_LOG_DIRS"] == mounts["kafka"]
    assert SERVICES["kafka"]["environment"]["CLUSTER_ID"]  # a formatted volume keeps its id
    assert "--appendonly" in SERVICES["redis"]["command"]


def test_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name in ("worker", "producer", "topics", "bootstrap", "trainer", "catalog"):
        args = parser.parse_args(SERVICES[name]["command"][1:])
        assert callable(args.func), name


def test_model_versions_have_exactly_one_trainer_and_one_catalogue_publisher() -> None:
    for name in ("trainer", "catalog"):
        service = SERVICES[name]
        assert service["deploy"]["replicas"] == 1, name
        assert "./model_repository:/models" in service["volumes"], name  # they publish
    # the workers only follow versions: they cannot write the repository
    assert "./model_repository:/models:ro" in SERVICES["worker"]["volumes"]


def test_grafana_and_prometheus_files_are_mounted_from_the_repository() -> None:
    for name in ("prometheus", "grafana"):
        for volume in SERVICES[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), volume
    provider = yaml.safe_load(
        (REPO / "docker/grafana/provisioning/dashboards/streamrec.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./docker/grafana/dashboards:{path}:ro" in SERVICES["grafana"]["volumes"]
    assert "/etc/prometheus/alerts.yml" in PROMETHEUS["rule_files"]


def exposed_series() -> set[str]:
    """Every sample name a worker exposes, from the real collectors over fake parts."""
    from streams.engine import EngineStats
    from streams.observability import ConsumerCollector, RuntimeCollector, WorkerMetrics
    from streams.probes import Readiness, ReadinessCollector

    client = SimpleNamespace(
        live=SimpleNamespace(model_name="sasrec", version=1), circuit_state="closed",
        breaker=SimpleNamespace(opens=0),
        stats=SimpleNamespace(errors=0, timeouts=0, circuit_rejections=0, version_switches=0),
    )
    runtime = SimpleNamespace(
        sent=Counter({"recommendations": 1}), mirror_failures=0,
        signals=SimpleNamespace(failures=0), engine=SimpleNamespace(stats=EngineStats()),
        feedback=SimpleNamespace(drifts=0), model_client=client,
    )
    metrics = WorkerMetrics()
    metrics.record_batch("clicks", [SimpleNamespace(message=SimpleNamespace(timestamp=1.0))])
    metrics.watch(RuntimeCollector(runtime))
    tp = SimpleNamespace(topic="clicks", partition=0)
    metrics.watch(ConsumerCollector(lambda: ["clicks"], lambda: [tp], lambda t: 1, lambda t: 0))
    metrics.watch(ReadinessCollector(Readiness(runtime=lambda: None)))
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def test_dashboard_and_alerts_use_only_series_the_worker_exposes() -> None:
    series = exposed_series()
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    exprs += [rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"streamrec_[a-z0-9_]+", expr)}
    assert used and used <= series, used - series
    titles = " ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for topic in ("events per second", "latency", "lag", "dead letters", "fallback",
                  "model version"):
        assert topic in titles, topic


def test_topic_profile_for_kafka_has_12_partitions() -> None:
    from streamrec.core.config import KAFKA_PROFILE

    assert KAFKA_PROFILE["topic_partitions"] >= 12
    assert (REPO / "Dockerfile").exists()
