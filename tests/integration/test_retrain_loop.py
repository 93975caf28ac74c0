"""The retraining loop on the real broker: a drift on the live hit stream asks for a retrain,
the trainer fine-tunes from the live version on clicks replayed from Kafka, publishes the better
candidate (a new version goes live), rejects a worse one, and rolls back a version that loses
live. The decision objects alone are tested in tests/unit/test_retrain_decisions.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from streamrec.core.config import Settings
from training.gate import PromotionGate
from training.retrain_policy import RetrainPolicy

torch = pytest.importorskip("torch")


# --- the loop on the real broker ----------------------------------------------------------------
def tiny_live_model(events: list, repo: Path, artifacts: Path) -> int:
    from training.data import Interactions, LeaveOneOut
    from training.export import publish_version
    from training.model import ModelConfig
    from training.train import TrainConfig, save_checkpoint, train_model

    data = Interactions([e.user_id for e in events], [e.item_id for e in events],
                        [e.ts for e in events])
    split = LeaveOneOut.from_interactions(data)
    config = TrainConfig(model=ModelConfig(dim=32, use_text=False), epochs=6, time_budget_s=20,
                         patience=2, warmup_epochs=1)
    result = train_model(split, None, config, progress=False)
    checkpoint = artifacts / "live.pt"
    save_checkpoint(result, checkpoint)
    return publish_version(checkpoint, repo, "sasrec", parent_version=None)


def replay_until_drift(settings: Settings, events: list, version: int) -> list[dict]:
    """The worker's feedback path over the stream: returns the drift events it raised."""
    from streams.drift import HitRateDriftDetector
    from streams.engine import Catalog, EngineConfig, RecommendationEngine
    from streams.feedback import DRIFT, AdaptiveFeedback
    from streams.rerank import OnlineReranker
    from streams.signals import InMemorySignals
    from training.replay.prequential import LiveModelSource
    from training.trainer import Trainer

    live = Trainer(settings).load_version(version)
    reranker = OnlineReranker()
    feedback = AdaptiveFeedback(reranker, HitRateDriftDetector(), worker="test")
    engine = RecommendationEngine(
        InMemorySignals(3_600_000, 600_000), Catalog(), model=LiveModelSource(live),
        ranker=reranker, feedback=feedback, config=EngineConfig(model_timeout_s=30.0),
    )
    states: dict = {}
    drifts: list[dict] = []

    async def run() -> None:
        for start in range(0, len(events), 8):
            await engine.process_batch(events[start : start + 8], states)
            drifts.extend(e for e in feedback.drain_events() if e["type"] == DRIFT)
            if drifts:
                return

    asyncio.run(run())
    return drifts


def model_events(settings: Settings, until: int) -> list[dict]:
    from tests.support import collect

    got = collect(settings, [settings.kafka.model_events_topic],
                  lambda out: len(out[settings.kafka.model_events_topic]) >= until, timeout_s=30,
                  what=f"{until} decisions on model-events")
    return got[settings.kafka.model_events_topic]


@pytest.mark.slow  # ~25 s on a 2-core machine
def test_drift_triggers_a_retrain_better_goes_live_worse_is_rejected(
    stream_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.feedback import DRIFT
    from tests.support import event_record, produce
    from training.fine_tune import FineTuneConfig
    from training.model import SequenceRecommender
    from training.scored_model import ScoredModel
    from training.synthetic import abrupt_drift_stream
    from training.trainer import Trainer
    from training.trainer_service import TrainerService

    monkeypatch.setenv("STREAMREC_ARTIFACTS", str(tmp_path / "artifacts"))
    settings = stream_settings.replace(triton={"model_repository": tmp_path / "repo"},
                                       artifacts=tmp_path / "artifacts")
    (tmp_path / "artifacts").mkdir()
    stream = abrupt_drift_stream(events=5_000, drift_at=2_500, n_users=120, n_items=240, seed=5)
    events = list(stream.events())
    repository = settings.triton.model_repository
    assert tiny_live_model(events[:2_500], repository, settings.artifacts) == 1

    # the worker's side: the hit stream of version 1 drops after the switch -> a drift event
    drifts = replay_until_drift(settings, events, version=1)
    assert drifts and drifts[0]["request"] == "retrain"
    produce(settings, settings.kafka.clicks_topic, [event_record(e.to_json()) for e in events])
    produce(settings, settings.kafka.model_events_topic, [(None, json.dumps(drifts[0]).encode())])

    # the trainer: fine-tunes version 1 on the replayed clicks; the candidate knows the new items
    trainer = Trainer(
        settings, policy=RetrainPolicy(cooldown=0), recent_events=3_000,
        gate=PromotionGate(metric="hr@10", min_gain=0.05, min_cases=30),
        finetune=FineTuneConfig(epochs=8, patience=2, lr=1e-3, time_budget_s=25),
    )
    asyncio.run(TrainerService(trainer).run(max_retrains=1))
    promote = trainer.decisions[-1]
    assert promote["type"] == "promote", promote
    assert promote["version"] == 2 and promote["reason"] == "drift"
    assert promote["gate"]["candidate"]["hr@10"] > promote["gate"]["live"]["hr@10"]
    assert (settings.triton.model_repository / "sasrec" / "2" / "model.onnx").exists()
    assert trainer.live_version() == 2

    # a second drift request; this time the candidate is worse (untrained): rejected
    def worse(live: ScoredModel, train: object) -> ScoredModel:
        torch.manual_seed(0)
        return ScoredModel(SequenceRecommender(live.model.config), live.vocab, "worse")

    produce(settings, settings.kafka.model_events_topic, [(None, json.dumps(drifts[0]).encode())])
    rejecting = Trainer(settings, policy=RetrainPolicy(cooldown=0), recent_events=3_000,
                        gate=PromotionGate(metric="hr@10", min_gain=0.05, min_cases=30),
                        candidate_fn=worse)
    asyncio.run(TrainerService(rejecting).run(max_retrains=1))
    reject = rejecting.decisions[-1]
    assert reject["type"] == "reject" and "does not beat" in reject["gate"]["reason"]
    assert trainer.live_version() == 2
    assert not (settings.triton.model_repository / "sasrec" / "3").exists()

    # every decision is on model-events: drift, retrain, promote, drift, retrain, reject
    kinds = [e["type"] for e in model_events(settings, until=6)]
    assert kinds.count(DRIFT) == 2 and kinds.count("retrain") == 2
    assert "promote" in kinds and "reject" in kinds

    # live check after the promotion: version 2 clearly loses to version 1 -> rolled back
    trainer.watch.counts["sasrec:1"] = [4_000, 1_200]
    trainer.watch.start(new="sasrec:2", previous="sasrec:1")
    trainer.watch.learn_one({"type": "hit_rate", "versions": {"sasrec:2": {"n": 2_500,
                                                                            "hits": 300}}})
    rollback = trainer.check_live()
    assert rollback is not None and rollback["type"] == "rollback"
    assert trainer.live_version() != 2  # pinned to version 1's weights
