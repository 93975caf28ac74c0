"""Prequential (test-then-learn) replay through the worker's own code.

Events are replayed in time order through :class:`~streams.engine.RecommendationEngine` with
the worker's parts: per-user :class:`~streams.state.UserState`, in-memory trending and
co-visitation (:class:`~streams.signals.InMemorySignals`), the feedback tracker, the River
re-ranker and drift detector, and the metric functions of :mod:`streamrec.core.metrics`. Each click
is first a test of the list the user received after their previous click (hit@10, NDCG@10),
then it updates everything, exactly as in the worker.

Protocol: the first part of the data (``warm``; MovieLens: the first half of the events; the
synthetic stream: the events before ``--warm``) trains the frozen model and warms user states
and stream signals without being scored; the rest is replayed and scored.

Variants (:data:`~training.replay.prequential.VARIANTS`):

- ``popular``: most clicked items in the recent event-time window (trending);
- ``covisit``: items co-visited after the user's last items, topped up by trending;
- ``biased_mf``: River's ``reco.BiasedMF`` learning online from clicks (implicit: 1 for the
  click, 0 for ``mf_negatives`` random items), ranking the whole catalogue;
- ``frozen``: the sequence model trained on the warm part, never updated (new items are not in
  its vocabulary), blended with co-visitation and trending by the fixed blend;
- ``reranked``: the frozen model + the online River re-ranker (learns from feedback);
- ``adaptive``: the full loop: re-ranker, drift detection (speed-up on drift), retraining on
  drift and on a schedule from the live version on recent events, promotion only through the
  gate on a recent holdout. A candidate goes live ``retrain_lag`` events after the retrain
  started (the time a trainer would need), not at once.

Several seeds (``--seeds``, default 0 1 2) run on ``--workers`` processes (default 2) and are
summarised as mean ± std; the drift metrics count hittable clicks (items new to the user) and
every alarm over the whole run (:mod:`~training.replay.report`).

Modules: :mod:`~training.replay.data` (what is replayed), :mod:`~training.replay.rankers` (the
stream baselines), :mod:`~training.replay.prequential` (the replay and its variants),
:mod:`~training.replay.frozen_model` (the sequence model trained on the warm part),
:mod:`~training.replay.adaptive_loop` (the retraining loop on the replay's clock),
:mod:`~training.replay.runner` (seeds and variants on a pool of processes) and
:mod:`~training.replay.report` (summary, drift metrics, the seeds' aggregate, plot).
"""
