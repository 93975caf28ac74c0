"""Online re-ranking with River: blend the candidate sources by what users click.

One job per module:

- :mod:`streams.rerank.features`: a candidate list as a feature matrix (:data:`FEATURES`: the
  model's score and rank, trending and co-visitation scores, the user's decayed affinity to the
  item's categories, the item's recency and age on event time);
- :mod:`streams.rerank.candidate_log`: the last list's candidates per user, kept until the
  user's next click says which one was wanted;
- :mod:`streams.rerank.reranker`: :class:`OnlineReranker`, River's verbs (``learn_one``,
  ``predict_one``), ``rank`` for the engine, learning from feedback, the drift response;
- :mod:`streams.rerank.exchange`: snapshots and weight averaging between workers, through Redis;
- :mod:`streams.rerank.bench`: ``streamrec bench rerank``.

>>> from streams.engine import Candidate
>>> r = OnlineReranker()
>>> x_model = r.features_of(Candidate("a", model_score=3.0, model_rank=0))
>>> x_trend = r.features_of(Candidate("b", trending_score=50.0, trending_rank=0))
>>> r.predict_one(x_model) > r.predict_one(x_trend)       # the prior: model first
True
>>> for _ in range(300):                                  # users keep clicking trending items
...     _ = r.learn_one(x_trend, True).learn_one(x_model, False)
>>> r.predict_one(x_model) < r.predict_one(x_trend)
True
"""

from __future__ import annotations

from streams.rerank.exchange import sync_through_redis
from streams.rerank.features import FEATURES
from streams.rerank.reranker import OnlineReranker, RerankConfig

__all__ = ["FEATURES", "OnlineReranker", "RerankConfig", "sync_through_redis"]
