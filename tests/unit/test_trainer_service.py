"""``streamrec trainer``: its retrain policy comes from the trainer section and its options
(follow-up retrains after a drift are an operator's setting), and item text is embedded once
per item, so a retrain embeds only items it has never seen."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from streamrec.cli import adapt


def test_the_trainer_policy_takes_cooldown_and_follow_ups_from_settings_and_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from training.trainer_service import TrainerService

    policies: list[Any] = []

    async def run(self: TrainerService, **_: Any) -> None:
        policies.append(self.trainer.policy)

    monkeypatch.setattr(TrainerService, "run", run)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path))
    monkeypatch.setenv("STREAMREC_TRAINER__COOLDOWN_S", "60")
    monkeypatch.setenv("STREAMREC_TRAINER__FOLLOWUPS", "3")
    options = {name: None for name in ("schedule_s", "cooldown_s", "recent_events",
                                       "min_regime_events", "finetune_budget_s", "followups",
                                       "max_retrains", "texts")}
    args = argparse.Namespace(**{**options, "followup_every_s": 45.0})
    assert adapt.run_trainer(args) == 0
    (policy,) = policies
    assert (policy.cooldown, policy.followups, policy.followup_every) == (60.0, 3, 45.0)
    # a drift arms the follow-ups: one more retrain once the cooldown and the interval passed
    policy.learn_one({"type": "drift", "request": "retrain", "ts": 5})
    assert policy.decide(now=0.0) == "drift"
    assert policy.decide(now=30.0) is None
    assert policy.decide(now=61.0) == "followup"


def test_item_text_is_embedded_once_per_item_and_rows_follow_the_vocabulary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import numpy as np

    import training.text_encoder as text_encoder
    from streamrec.core.config import Settings
    from training.trainer import Trainer

    embedded: list[list[str]] = []

    def fake_vectors(texts: list[str], *_: Any) -> np.ndarray:
        embedded.append(list(texts))
        return np.array([[float(len(t))] * text_encoder.DIM for t in texts], np.float32)

    monkeypatch.setattr(text_encoder, "cached_item_vectors", fake_vectors)
    settings = Settings.from_env(home=tmp_path, artifacts=tmp_path / "artifacts")
    trainer = Trainer(settings, texts={"a": "x", "b": "yy", "c": "zzz"})
    assert trainer.embed_texts() == 3 and embedded == [["x", "yy", "zzz"]]
    rows = trainer._text_vectors(["c", "a", "new"])  # "new" has no text: embedded as ""
    assert embedded[-1] == [""] and rows is not None and rows.shape == (4, text_encoder.DIM)
    assert rows[:, 0].tolist() == [0.0, 3.0, 1.0, 0.0]  # padding row, then in the given order
    assert trainer.embed_texts(["a", "b", "new"]) == 0  # nothing is embedded twice
    assert Trainer(settings)._text_vectors(["a"]) is None  # no text: an ID-only candidate
