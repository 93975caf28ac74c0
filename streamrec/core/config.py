"""One settings object, read from the environment.

Every host, port, path, topic name and tuning knob lives here; nothing else in the code base
repeats a literal address. Values come from environment variables (``STREAMREC_*`` plus the
conventional ``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL`` and ``TRITON_URL``). When the Kafka,
Redis or Triton address is unset, the embedded stack's recorded addresses
(``<home>/stack.json``, written by ``streamrec up``) are used.

Broker quirks of the embedded broker (tansu) live in exactly one place: :data:`EMBEDDED_PROFILE`.
Pointed at a real Kafka, Kafka's defaults apply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Settings that work around the embedded tansu broker's quirks (see README, "Embedded default").
# - a consumer-group join takes about half the session timeout: keep it short;
# - end_offsets() is wrong after multi-record batches, so Faust recovers tables short after a
#   restart unless the producer sends one record per batch;
# - idempotent/transactional producers are rejected: at-least-once only;
# - a fetch waits its full max wait even when records are there (fetch_min_bytes ignored).
EMBEDDED_PROFILE: dict[str, Any] = {
    "fetch_max_wait_ms": 10,
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 10.0,
    "producer_max_batch_size": 1,
    "consumer_session_timeout_ms": 6000,
    "consumer_heartbeat_interval_ms": 1000,
    "topic_partitions": 4,
}

# Apache Kafka (docker-compose, production): Kafka's and Faust's defaults.
KAFKA_PROFILE: dict[str, Any] = {
    "fetch_max_wait_ms": None,
    "broker_session_timeout": 60.0,
    "broker_heartbeat_interval": 3.0,
    "broker_rebalance_timeout": 60.0,
    # Faust's default (bytes); one record per batch is only the embedded broker's workaround
    "producer_max_batch_size": 16384,
    "consumer_session_timeout_ms": 45000,
    "consumer_heartbeat_interval_ms": 3000,
    "topic_partitions": 12,
}

PROFILES = {"embedded": EMBEDDED_PROFILE, "kafka": KAFKA_PROFILE}


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Typed configuration for every streamrec process."""

    # where the embedded stack keeps its pid files, logs and recorded addresses
    home: Path = Path(".streamrec")
    # service addresses; None means "use the embedded stack's"
    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    triton_url: str | None = None  # gRPC host:port
    profile: str = "embedded"  # embedded | kafka

    # topics
    clicks_topic: str = "clicks"
    dlq_topic: str = "clicks.dlq"
    items_topic: str = "items"
    recommendations_topic: str = "recommendations"
    model_events_topic: str = "model-events"
    impressions_topic: str = "impressions"

    # Faust
    app_id: str = "streamrec"
    worker_batch_size: int = 64
    worker_batch_within_s: float = 0.005
    # how often processed offsets are committed (Faust's broker_commit_interval): the most a
    # restarted worker re-reads (repeats change no state; their recommendations go out again)
    commit_interval_s: float = 1.0

    # event contract limits
    max_event_bytes: int = 64 * 1024
    max_id_length: int = 128
    max_future_skew_ms: int = 24 * 3600 * 1000

    # per-user temporal state
    history_length: int = 50
    session_gap_ms: int = 30 * 60 * 1000
    interest_half_life_ms: int = 7 * 24 * 3600 * 1000
    seen_capacity: int = 2000
    dedup_capacity: int = 256
    redis_state_ttl_s: int = 7 * 24 * 3600

    # stream recommenders (event time)
    trending_window_ms: int = 24 * 3600 * 1000
    trending_hop_ms: int = 3600 * 1000
    trending_refresh_s: float = 0.5
    covisit_top_n: int = 20
    recommendations_k: int = 10

    # model serving
    model_name: str = "sasrec"
    model_repository: Path = Path("model_repository")
    triton_timeout_s: float = 0.08
    triton_max_batch: int = 64
    triton_max_delay_s: float = 0.002

    # training artifacts (checkpoints, metrics) and reports
    artifacts: Path = Path("artifacts")

    # the resolved broker profile (EMBEDDED_PROFILE or KAFKA_PROFILE)
    broker: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings from ``STREAMREC_<FIELD>`` variables and the conventional names."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "broker":
                continue
            raw = _env(f"STREAMREC_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.type, raw)
        values.setdefault("kafka_bootstrap", _env("KAFKA_BOOTSTRAP_SERVERS"))
        values.setdefault("redis_url", _env("REDIS_URL"))
        values.setdefault("triton_url", _env("TRITON_URL"))
        if "profile" not in values:
            values["profile"] = "kafka" if values["kafka_bootstrap"] else "embedded"
        values.update(overrides)
        settings = cls(**values)
        if settings.profile not in PROFILES:
            raise ValueError(
                f"STREAMREC_PROFILE must be one of {sorted(PROFILES)}, not {settings.profile!r}"
            )
        return replace(settings, broker=dict(PROFILES[settings.profile]))

    # --- the embedded stack's recorded addresses -------------------------------------------
    @property
    def stack_file(self) -> Path:
        return self.home / "stack.json"

    def embedded_stack(self) -> dict[str, Any]:
        try:
            return json.loads(self.stack_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def resolved(self) -> Settings:
        """Fill unset addresses from the embedded stack started by ``streamrec up``."""
        stack = self.embedded_stack()
        return replace(
            self,
            kafka_bootstrap=self.kafka_bootstrap or stack.get("kafka"),
            redis_url=self.redis_url or stack.get("redis"),
            triton_url=self.triton_url or stack.get("triton_grpc"),
        )

    def require_kafka(self) -> str:
        addr = self.resolved().kafka_bootstrap
        if not addr:
            raise UserError(
                "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or run `streamrec up` first"
            )
        return addr

    def require_redis(self) -> str:
        url = self.resolved().redis_url
        if not url:
            raise UserError("no Redis: set REDIS_URL or run `streamrec up` first")
        return url


class UserError(Exception):
    """An error a user can cause and fix; the CLI prints it as one line, no traceback."""


def _coerce(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if "Path" in kind:
        return Path(raw)
    if "bool" in kind:
        return raw.lower() in ("1", "true", "yes", "on")
    if kind.startswith("int"):
        return int(raw)
    if kind.startswith("float"):
        return float(raw)
    return raw
