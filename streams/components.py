"""The worker's components configured from :class:`~streamrec.core.config.Settings`.

One place maps each settings section onto the constructor it configures, so a re-ranker or a
drift detector never runs on code defaults that differ from what ``streamrec config`` shows:

- ``engine`` -> :class:`~streams.state.StateConfig`, :class:`~streams.engine.EngineConfig`
  (with the ``triton`` section's model timeout);
- ``reranker`` -> :class:`~streams.rerank.reranker.RerankConfig` (its interest half-life is the
  engine's, so the re-ranker's interest features decay like the user state does);
- ``drift`` -> :class:`~streams.drift.DriftConfig`;
- ``kafka`` security -> Faust's broker credentials (aiokafka's clients take
  ``settings.kafka.client_options()``).
"""

from __future__ import annotations

from typing import Any

from streamrec.core.config import Settings
from streams.drift import DriftConfig, HitRateDriftDetector
from streams.engine import EngineConfig
from streams.rerank.reranker import OnlineReranker, RerankConfig
from streams.state import StateConfig


def state_config(settings: Settings) -> StateConfig:
    engine = settings.engine
    return StateConfig(
        history_length=engine.history_length,
        session_gap_ms=engine.session_gap_ms,
        interest_half_life_ms=engine.interest_half_life_ms,
        seen_capacity=engine.seen_capacity,
        dedup_capacity=engine.dedup_capacity,
    )


def engine_config(settings: Settings) -> EngineConfig:
    engine = settings.engine
    return EngineConfig(
        k=engine.k, model_k=engine.model_k, covisit_anchors=engine.covisit_anchors,
        model_timeout_s=settings.triton.timeout_s, state=state_config(settings),
    )


def rerank_config(settings: Settings) -> RerankConfig:
    return RerankConfig(
        **settings.reranker.model_dump(),
        interest_half_life_ms=settings.engine.interest_half_life_ms,
    )


def drift_config(settings: Settings) -> DriftConfig:
    return DriftConfig(**settings.drift.model_dump())


def build_reranker(settings: Settings) -> OnlineReranker:
    return OnlineReranker(rerank_config(settings))


def build_drift_detector(settings: Settings) -> HitRateDriftDetector:
    return HitRateDriftDetector(config=drift_config(settings))


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the ``kafka`` section's security (None: plaintext)."""
    import faust

    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = kafka.ssl_context() if kafka.security_protocol.endswith("SSL") else None
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return faust.SASLCredentials(username=kafka.sasl_username, password=password,
                                     ssl_context=context, mechanism=kafka.sasl_mechanism or "PLAIN")
    return faust.SSLCredentials(context)
