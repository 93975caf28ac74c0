"""One typed configuration for every streamrec process (pydantic-settings).

Every host, port, path, topic name and tuning knob lives here, in sections::

    home, artifacts                      top-level paths
    kafka, redis, triton                 the services (addresses, topics, security)
    worker, engine, reranker, drift      the stream worker and what it builds
    observability                        the worker's /metrics, /health, /ready; log format
    client                               the worker's Triton client
    trainer, replay                      ``streamrec trainer`` and ``streamrec replay``

Where a value comes from, strongest first:

1. overrides given to :meth:`Settings.from_env` (tests, the CLI);
2. ``STREAMREC_<SECTION>__<FIELD>`` (``STREAMREC_WORKER__BATCH_SIZE=128``), ``STREAMREC_HOME``,
   ``STREAMREC_ARTIFACTS``;
3. the conventional ``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL`` and ``TRITON_URL``;
4. the TOML file named by ``STREAMREC_CONFIG`` (``[worker]`` / ``batch_size = 128``);
5. the defaults below.

When the Kafka, Redis or Triton address is unset, the embedded stack's recorded addresses
(``<home>/stack.json``, written by ``streamrec up``) are used: see :meth:`Settings.resolved`.
A bad value raises :class:`UserError` with one line naming the variable and what it expects.

Broker quirks of the embedded broker (tansu) live in exactly one place: :data:`EMBEDDED_PROFILE`.
Pointed at a real Kafka, Kafka's defaults apply (:data:`KAFKA_PROFILE`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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
    # the user-state table's Faust store (WorkerSettings.store): in memory, rebuilt from its
    # changelog at start-up (`streamrec bench e2e`, README "Performance": faster on the demo)
    "table_store": "memory",
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
    # RocksDB on local disk (rocksdict): state may outgrow RAM and a restarted worker reads
    # only the changelog written since its last local write
    "table_store": "rocksdb",
}

PROFILES = {"embedded": EMBEDDED_PROFILE, "kafka": KAFKA_PROFILE}

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


class UserError(Exception):
    """An error a user can cause and fix; the CLI prints it as one line, no traceback."""


class Section(BaseModel):
    """A configuration section: typed, immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    # None: the embedded stack's broker (``streamrec up``)
    bootstrap_servers: str | None = None
    # embedded (tansu's quirks) | kafka (Kafka's defaults); kafka when bootstrap_servers is set
    profile: Literal["embedded", "kafka"] = "embedded"
    partitions: int | None = Field(default=None, ge=1)  # of new topics; None: the profile's
    replication_factor: int = Field(default=1, ge=1)  # of new topics (3 on a real cluster)
    clicks_topic: str = "clicks"
    dlq_topic: str = "clicks.dlq"
    items_topic: str = "items"
    recommendations_topic: str = "recommendations"
    model_events_topic: str = "model-events"
    impressions_topic: str = "impressions"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _profile_follows_bootstrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("bootstrap_servers") and "profile" not in data:
            return {**data, "profile": "kafka"}
        return data

    @property
    def broker(self) -> dict[str, Any]:
        """The broker profile (:data:`EMBEDDED_PROFILE` or :data:`KAFKA_PROFILE`) in effect."""
        profile = dict(PROFILES[self.profile])
        if self.partitions is not None:
            profile["topic_partitions"] = self.partitions
        return profile

    def client_options(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka's producers, consumers and admin client."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> Any:
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
            keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
        )


class RedisSettings(Section):
    """Where Redis is, how to authenticate, and how long each shared key family lives.

    Every key the workers write carries a TTL (refreshed on each write), so nothing in Redis
    outlives the data it came from; see :data:`streams.serving_state` and README "Redis keys".
    """

    url: str | None = None  # None: the embedded stack's Redis
    password: SecretStr | None = None  # added to the URL when it carries none
    username: str | None = None  # Redis 6 ACL user (with password); None: the default user
    # TLS: a ``rediss://`` URL, or ``tls = true`` to turn ``redis://`` into ``rediss://``
    tls: bool = False
    ssl_ca_certs: Path | None = None  # CA bundle that signed the server's certificate
    ssl_certfile: Path | None = None  # client certificate (mutual TLS)
    ssl_keyfile: Path | None = None
    state_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)  # user:<id>:state and :recs mirrors
    covis_ttl_s: int = Field(default=14 * 24 * 3600, ge=1)  # covis:<item>, since its last click
    trending_ttl_s: int = Field(default=3 * 24 * 3600, ge=1)  # trend:<hop> (>= the window)
    catalog_ttl_s: int = Field(default=90 * 24 * 3600, ge=1)  # item:<id>, items:inactive
    worker_ttl_s: int = Field(default=3600, ge=60)  # workers:ready, reranker:workers

    def client_options(self, url: str) -> dict[str, Any]:
        """redis-py keyword arguments for ``url`` (TLS files only for a ``rediss://`` URL).

        >>> RedisSettings(ssl_ca_certs=Path("ca.pem")).client_options("rediss://h:6379/0")
        {'ssl_ca_certs': 'ca.pem', 'ssl_cert_reqs': 'required'}
        >>> RedisSettings(ssl_ca_certs=Path("ca.pem")).client_options("redis://h:6379/0")
        {}
        """
        options: dict[str, Any] = {}
        if self.username is not None:
            options["username"] = self.username
        if not url.startswith("rediss://"):
            return options
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                options[name] = str(value)
        options["ssl_cert_reqs"] = "required"
        return options


class TritonSettings(Section):
    url: str | None = None  # gRPC host:port; None: the embedded stack's Triton
    model_name: str = "sasrec"
    model_repository: Path = Path("model_repository")
    timeout_s: float = Field(default=0.08, gt=0)  # per model call; then the fallback answers
    max_batch: int = Field(default=64, ge=1)
    max_delay_s: float = Field(default=0.002, ge=0)
    # gRPC TLS (tritonclient's ssl/root_certificates/private_key/certificate_chain: PEM files)
    grpc_ssl: bool = False
    root_certificates: Path | None = None  # CA that signed Triton's certificate
    private_key: Path | None = None  # client key and chain (mutual TLS)
    certificate_chain: Path | None = None
    # `streamrec model prune` and the trainer/catalogue after publishing keep the live version,
    # the pinned one, rollback's target and the newest `keep_versions` (>= the 2 Triton loads)
    keep_versions: int = Field(default=5, ge=2)

    def grpc_options(self) -> dict[str, Any]:
        """tritonclient gRPC keyword arguments for TLS (empty: plaintext).

        >>> TritonSettings(grpc_ssl=True, root_certificates=Path("ca.pem")).grpc_options()
        {'ssl': True, 'root_certificates': 'ca.pem', 'private_key': None, 'certificate_chain': None}
        """
        if not self.grpc_ssl:
            return {}
        return {
            "ssl": True,
            "root_certificates": _path_or_none(self.root_certificates),
            "private_key": _path_or_none(self.private_key),
            "certificate_chain": _path_or_none(self.certificate_chain),
        }


class WorkerSettings(Section):
    app_id: str = "streamrec"  # the Faust app id (consumer group)
    batch_size: int = Field(default=64, ge=1)
    batch_within_s: float = Field(default=0.005, ge=0)
    # how often processed offsets are committed (Faust's broker_commit_interval): the most a
    # restarted worker re-reads (repeats change no state; their recommendations go out again)
    commit_interval_s: float = Field(default=1.0, gt=0)
    # event contract limits
    max_event_bytes: int = Field(default=64 * 1024, ge=1)
    max_id_length: int = Field(default=128, ge=1)
    max_future_skew_ms: int = Field(default=DAY_MS, ge=0)
    # uvloop when installed (a dependency): asyncio's own machinery was the largest share of
    # the worker's profile; "asyncio" keeps the standard loop
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # the user-state table's store: "memory" (rebuilt from the changelog at start-up) or
    # "rocksdb" (local disk under STREAMREC_HOME, outgrows RAM); None: the broker profile's
    # (memory with the embedded broker, rocksdb with Kafka)
    store: Literal["memory", "rocksdb"] | None = None


class ObservabilitySettings(Section):
    """The worker's HTTP endpoint (``/metrics``, ``/health``, ``/ready``) and its log format."""

    enabled: bool = True
    host: str = "127.0.0.1"  # 0.0.0.0 in a container, so Prometheus and the probes reach it
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (see workers:ready)
    log_format: Literal["text", "json"] = "text"  # json: one object per line, ids only


class EngineSettings(Section):
    k: int = Field(default=10, ge=1)  # recommendations per event
    model_k: int = Field(default=50, ge=1)  # candidates asked from the model
    covisit_anchors: int = Field(default=3, ge=0)
    # per-user temporal state (event time)
    history_length: int = Field(default=50, ge=1)
    session_gap_ms: int = Field(default=30 * 60 * 1000, ge=1)
    interest_half_life_ms: int = Field(default=7 * DAY_MS, ge=1)
    seen_capacity: int = Field(default=2000, ge=1)
    dedup_capacity: int = Field(default=256, ge=1)
    # stream recommenders (event time)
    trending_window_ms: int = Field(default=DAY_MS, ge=1)
    trending_hop_ms: int = Field(default=HOUR_MS, ge=1)
    trending_refresh_s: float = Field(default=0.5, gt=0)
    covisit_top_n: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _seen_holds_the_history(self) -> EngineSettings:
        # the seen-set's recent end is the history's items (the state's table encoding)
        if self.seen_capacity < self.history_length:
            raise ValueError(f"seen_capacity ({self.seen_capacity}) must be at least "
                             f"history_length ({self.history_length})")
        return self


class RerankerSettings(Section):
    """streams.rerank.RerankConfig; its interest half-life is the engine's."""

    optimizer: Literal["adagrad", "adam"] = "adagrad"
    lr: float = Field(default=0.05, gt=0)
    l2: float = Field(default=0.0, ge=0)
    boost_factor: float = Field(default=2.0, gt=0)  # speed_up(): learning-rate multiplier ...
    boost_steps: int = Field(default=50_000, ge=0)  # ... for this many learn_one calls
    model_shrink: float = Field(default=0.5, ge=0)  # speed_up(): weights multiplied by this
    recency_half_life_ms: int = Field(default=HOUR_MS, ge=1)
    age_half_life_ms: int = Field(default=DAY_MS, ge=1)
    logged_users: int = Field(default=50_000, ge=1)  # users whose last lists are kept
    logged_candidates: int = Field(default=50, ge=1)  # candidates kept per list
    unshown_weight: float = Field(default=1.0, ge=0)  # a logged, unshown candidate as negative


class DriftSettings(Section):
    """streams.drift.DriftConfig (the hit-rate drift detector)."""

    adwin_delta: float = Field(default=0.002, gt=0)
    ph_delta: float = Field(default=0.005, ge=0)
    ph_threshold: float = Field(default=40.0, gt=0)
    ph_min_instances: int = Field(default=100, ge=1)
    warmup: int = Field(default=200, ge=0)  # no alarm during the first updates
    cooldown: int = Field(default=300, ge=0)  # updates after an alarm without a new one
    min_drop: float = Field(default=0.25, ge=0)  # relative drop of the hit rate an alarm needs
    recent_window: int = Field(default=300, ge=1)  # fast moving average confirming Page-Hinkley


class ClientSettings(Section):
    """inference.client.ClientConfig, beside the triton section's address and batching."""

    retries: int = Field(default=1, ge=0)
    failure_threshold: int = Field(default=3, ge=1)  # failures that open the circuit ...
    open_s: float = Field(default=1.0, gt=0)  # ... for this long
    max_in_flight: int = Field(default=16, ge=1)
    watch_interval_s: float = Field(default=0.5, gt=0)  # how often the live version is checked
    exclude_min_width: int = Field(default=16, ge=1)


class TrainerSettings(Section):
    """``streamrec trainer``: the retraining loop."""

    schedule_s: float | None = Field(default=None, gt=0)  # also retrain every N seconds
    # at most one retrain per N seconds; one minute, so that a candidate the gate rejects
    # (trained on a window still mostly pre-drift) is retried on fresher clicks within minutes
    cooldown_s: float = Field(default=60.0, ge=0)
    recent_events: int = Field(default=50_000, ge=1)
    min_regime_events: int = Field(default=2_000, ge=0)
    finetune_budget_s: float = Field(default=120.0, gt=0)
    # after a drift's retrain, this many more, followup_every_s apart (cooldown_s still holds),
    # each on fresher post-drift clicks (RetrainPolicy.followups)
    followups: int = Field(default=3, ge=0)
    followup_every_s: float | None = Field(default=60.0, gt=0)


class ReplaySettings(Section):
    """``streamrec replay``: the prequential replay."""

    window: int | None = Field(default=None, ge=1)  # None: 1000 synthetic, 5000 ml-100k
    events: int = Field(default=35_000, ge=1)  # synthetic: stream length
    warm: int = Field(default=15_000, ge=0)  # synthetic: warm-up events
    drift_at: int = Field(default=20_000, ge=0)  # synthetic: drift event
    users: int = Field(default=2_000, ge=1)  # synthetic
    items: int = Field(default=1_000, ge=1)  # synthetic
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # mean ± std
    workers: int = Field(default=2, ge=1)  # processes running the seeds' passes
    batch_size: int = Field(default=8, ge=1)  # events per engine batch (the worker's batches)
    # the frozen model's training and the adaptive loop's fine-tunes stop on epochs and early
    # stopping, never on the wall clock (results must not depend on the machine's load)
    train_epochs: int | None = Field(default=None, ge=1)  # None: 12 synthetic, TrainConfig's
    train_patience: int | None = Field(default=None, ge=1)  # None: 3 synthetic, TrainConfig's
    retrain_every: int | None = Field(default=None, ge=1)  # None: 20000 synthetic, 5000 ml-100k
    retrain_lag: int = Field(default=500, ge=0)
    recent_events: int = Field(default=20_000, ge=1)
    min_regime_events: int = Field(default=2_000, ge=0)
    finetune_epochs: int = Field(default=5, ge=1)
    finetune_patience: int = Field(default=2, ge=1)


class Settings(BaseSettings):
    """Typed configuration for every streamrec process; build it with :meth:`from_env`."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    # where the embedded stack keeps its pid files, logs and recorded addresses
    home: Path = Path(".streamrec")
    # training artifacts (checkpoints, metrics) and reports
    artifacts: Path = Path("artifacts")
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    triton: TritonSettings = TritonSettings()
    worker: WorkerSettings = WorkerSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    engine: EngineSettings = EngineSettings()
    reranker: RerankerSettings = RerankerSettings()
    drift: DriftSettings = DriftSettings()
    client: ClientSettings = ClientSettings()
    trainer: TrainerSettings = TrainerSettings()
    replay: ReplaySettings = ReplaySettings()

    # "section.field" -> where its value came from (a variable, the file, override, default)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from streamrec.core.config_sources import ConventionalEnvSource, config_file_source

        return (init_settings, env_settings, ConventionalEnvSource(settings_cls),
                config_file_source(settings_cls))

    @classmethod
    def from_env(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Settings from the environment and the config file; ``overrides`` win.

        Overrides are top-level fields or sections as (partial) dicts:
        ``Settings.from_env(home=tmp, worker={"batch_size": 8})``. A bad value raises
        :class:`UserError` naming where it came from.
        """
        from streamrec.core import config_sources

        return config_sources.build(cls, config_file, overrides)

    def replace(self, **changes: Any) -> Settings:
        """A copy with top-level fields or section fields changed (validated, no environment)::

        settings.replace(artifacts=tmp, triton={"model_repository": repo})
        """
        update: dict[str, Any] = {}
        for name, value in changes.items():
            section = getattr(self, name)
            if isinstance(section, Section) and isinstance(value, dict):
                value = type(section).model_validate({**dict(section), **value})
            update[name] = TypeAdapter(type(self).model_fields[name].annotation).validate_python(
                value
            )
        return self.model_copy(update=update)

    def origin(self, dotted: str) -> str:
        """Where ``section.field`` came from: its variable, the file, override or default."""
        return self._origins.get(dotted, "default")

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
        resolved = self.replace(
            kafka={"bootstrap_servers": self.kafka.bootstrap_servers or stack.get("kafka")},
            redis={"url": self.redis.url or stack.get("redis")},
            triton={"url": self.triton.url or stack.get("triton_grpc")},
        )
        resolved._origins = dict(self._origins)
        for dotted, before in (("kafka.bootstrap_servers", self.kafka.bootstrap_servers),
                               ("redis.url", self.redis.url), ("triton.url", self.triton.url)):
            if before is None and _get(resolved, dotted) is not None:
                resolved._origins[dotted] = str(self.stack_file)
        return resolved

    def require_kafka(self) -> str:
        addr = self.resolved().kafka.bootstrap_servers
        if not addr:
            raise UserError(
                "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or run `streamrec up` first"
            )
        return addr

    def require_redis(self) -> str:
        """The Redis URL to connect to, with ``redis.password`` when the URL carries none and
        ``rediss://`` when ``redis.tls`` is set; pass :meth:`redis_options` with it."""
        url = self.resolved().redis.url
        if not url:
            raise UserError("no Redis: set REDIS_URL or run `streamrec up` first")
        if self.redis.tls and url.startswith("redis://"):
            url = "rediss://" + url[len("redis://"):]
        if self.redis.password is None:
            return url
        parts = urlsplit(url)
        if parts.password or "@" in parts.netloc:
            return url
        secret = quote(self.redis.password.get_secret_value(), safe="")
        return urlunsplit(parts._replace(netloc=f":{secret}@{parts.netloc}"))

    def redis_options(self) -> dict[str, Any]:
        """redis-py keyword arguments (ACL user, TLS files) for :meth:`require_redis`'s URL."""
        return self.redis.client_options(self.require_redis())



def _get(settings: Settings, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(settings, section), name)


def _path_or_none(path: Path | None) -> str | None:
    return str(path) if path is not None else None
