"""Synthetic click streams with controllable interest drift, for drift and scale tests.

The world: ``n_items`` items split into *clusters* (themes with their own words, so every item
has catalogue text). Each user has a home cluster and walks through it: with probability
``p_sequential`` the next item is one of the few items that follow the previous one in its
cluster's fixed order (a sequential pattern a sequence model and co-visitation can learn),
otherwise an item drawn by the cluster's Zipf popularity. Users are drawn by a Zipf activity
law; event time advances ``step_ms`` per event.

Drift (:class:`DriftSpec`): at event ``at`` a share of users move from their home cluster to
that cluster's *target* cluster, abruptly or gradually (each user switches at a time drawn
uniformly from ``[at, at + duration)``). By default the targets are *new* clusters whose items
never occur before the drift: a model frozen before the drift has never seen them (they are
not in its vocabulary), so it cannot absorb the drift by itself; their text is in the
catalogue from the start, as a shop would list new arrivals.

Scale: the generator keeps a few numpy arrays per user and per item, so 1M users and 100k items
fit in a few tens of MB; events are produced lazily (about 1M events in 10 s on one core).

>>> stream = SyntheticStream(SyntheticConfig(n_users=50, n_items=60, n_clusters=3, events=200,
...                                          drifts=[DriftSpec(at=100)], seed=1))
>>> events = list(stream.events())
>>> len(events), events[0].ts < events[-1].ts
(200, True)
>>> new = set(stream.new_items())
>>> any(e.item_id in new for e in events[:100]), any(e.item_id in new for e in events[100:])
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from streamrec.core.events import CatalogItem, ClickEvent
from training.data import CatalogText, Interactions

THEMES = [
    ("jazz", ["saxophone", "swing", "bebop", "trumpet", "club"]),
    ("hiking", ["trail", "mountain", "boots", "summit", "forest"]),
    ("cooking", ["recipe", "kitchen", "spice", "oven", "pasta"]),
    ("space", ["rocket", "orbit", "galaxy", "astronaut", "telescope"]),
    ("gardening", ["seeds", "soil", "roses", "greenhouse", "compost"]),
    ("football", ["goal", "league", "striker", "stadium", "match"]),
    ("painting", ["canvas", "oil", "brush", "portrait", "gallery"]),
    ("cycling", ["bike", "pedal", "race", "helmet", "road"]),
    ("history", ["empire", "medieval", "war", "castle", "archive"]),
    ("cinema", ["director", "film", "noir", "screen", "festival"]),
    ("photography", ["camera", "lens", "shutter", "light", "studio"]),
    ("chess", ["opening", "endgame", "bishop", "gambit", "tournament"]),
    ("robotics", ["servo", "sensor", "arduino", "motor", "autonomy"]),
    ("fashion", ["runway", "denim", "couture", "fabric", "season"]),
    ("travel", ["airport", "island", "hostel", "passport", "journey"]),
    ("poetry", ["verse", "sonnet", "rhyme", "stanza", "ode"]),
]
ADJECTIVES = ["classic", "modern", "essential", "hidden", "complete", "little", "great", "wild",
              "quiet", "bright", "urban", "secret", "golden", "simple", "deep", "lost"]


@dataclass(frozen=True)
class DriftSpec:
    """Users of ``share`` move to their cluster's target cluster from event ``at`` on.

    ``duration = 0`` is an abrupt switch; otherwise each user switches at a uniform time in
    ``[at, at + duration)`` (gradual drift).
    """

    at: int
    duration: int = 0
    share: float = 1.0


@dataclass
class SyntheticConfig:
    n_users: int = 2_000
    n_items: int = 2_000
    n_clusters: int = 8  # clusters present before any drift
    new_clusters: int | None = None  # clusters introduced by drift (default: as many as drifts)
    events: int = 60_000
    drifts: list[DriftSpec] = field(default_factory=list)
    p_sequential: float = 0.7
    successors: int = 3  # how many items may follow an item in its cluster's order
    popularity_exponent: float = 1.0
    user_activity_exponent: float = 0.5
    step_ms: int = 30_000
    start_ts: int = 1_700_000_000_000
    seed: int = 0

    @property
    def n_new_clusters(self) -> int:
        if self.new_clusters is not None:
            return self.new_clusters
        return self.n_clusters if self.drifts else 0


class SyntheticStream:
    """A reproducible synthetic world: catalogue, users and a drifting click stream."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = c = config
        rng = np.random.default_rng(c.seed)
        total_clusters = c.n_clusters + c.n_new_clusters
        # items are spread over every cluster (old and new) in contiguous blocks
        self.item_cluster = np.sort(rng.integers(0, total_clusters, size=c.n_items))
        self.item_cluster[:total_clusters] = np.arange(total_clusters)  # no empty cluster
        self.item_cluster.sort()
        self.cluster_items = [np.flatnonzero(self.item_cluster == k) for k in range(total_clusters)]
        self.cluster_cdf = []
        for members in self.cluster_items:
            ranks = rng.permutation(len(members)) + 1
            weights = ranks.astype(np.float64) ** -c.popularity_exponent
            self.cluster_cdf.append(np.cumsum(weights) / weights.sum())
        # position of each item in its cluster's order (sequential pattern)
        self.item_position = np.zeros(c.n_items, dtype=np.int64)
        for members in self.cluster_items:
            self.item_position[members] = np.arange(len(members))
        self.user_home = rng.integers(0, c.n_clusters, size=c.n_users)
        activity = (np.arange(c.n_users) + 1.0) ** -c.user_activity_exponent
        self.user_cdf = np.cumsum(activity) / activity.sum()
        # target cluster of every old cluster when a drift moves its users
        if c.n_new_clusters:
            self.drift_target = c.n_clusters + (np.arange(c.n_clusters) % c.n_new_clusters)
        else:
            self.drift_target = (np.arange(c.n_clusters) + 1) % max(1, c.n_clusters)
        self._rng_seed = c.seed

    # --- ids and catalogue -----------------------------------------------------------------
    @staticmethod
    def item_id(index: int) -> str:
        return f"i{index}"

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index}"

    def cluster_name(self, cluster: int) -> str:
        theme, _ = THEMES[cluster % len(THEMES)]
        edition = cluster // len(THEMES)
        return theme if edition == 0 else f"{theme}-{edition + 1}"

    def new_items(self) -> list[str]:
        """Items of the clusters that only drift introduces."""
        first_new = self.config.n_clusters
        return [self.item_id(int(i)) for i in np.flatnonzero(self.item_cluster >= first_new)]

    def catalog_texts(self) -> list[CatalogText]:
        """Title and text for every item (as training's text encoder sees them)."""
        out = []
        for index in range(self.config.n_items):
            cluster = int(self.item_cluster[index])
            theme, words = THEMES[cluster % len(THEMES)]
            pos = int(self.item_position[index])
            adjective = ADJECTIVES[(index * 7 + pos) % len(ADJECTIVES)]
            w1, w2 = words[pos % len(words)], words[(pos * 3 + 1) % len(words)]
            title = f"The {adjective} {w1} {theme} guide #{pos}"
            text = f"{title}. A {theme} item about {w1} and {w2}."
            out.append(CatalogText(self.item_id(index), title, text, [self.cluster_name(cluster)]))
        return out

    def catalog(self) -> list[CatalogItem]:
        """The catalogue as ``items`` topic records."""
        return [
            CatalogItem(t.item_id, title=t.title, text=t.text, categories=tuple(t.categories))
            for t in self.catalog_texts()
        ]

    # --- drift -----------------------------------------------------------------------------
    def drift_points(self) -> list[int]:
        return [d.at for d in self.config.drifts]

    def _switch_times(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Per drift, the event index at which each user switches (``inf`` = never)."""
        out = []
        for d in self.config.drifts:
            when = np.full(self.config.n_users, np.inf)
            movers = rng.random(self.config.n_users) < d.share
            offsets = rng.integers(0, max(1, d.duration), size=self.config.n_users)
            when[movers] = d.at + offsets[movers]
            out.append(when)
        return out

    # --- the stream ------------------------------------------------------------------------
    def events(self, chunk: int = 65_536) -> Iterator[ClickEvent]:
        """The click stream in time order (reproducible for a given seed)."""
        c = self.config
        rng = np.random.default_rng(c.seed + 1)
        switches = self._switch_times(rng)
        current = self.user_home.copy()
        switched = [np.zeros(c.n_users, dtype=bool) for _ in switches]
        last_item = np.full(c.n_users, -1, dtype=np.int64)
        for start in range(0, c.events, chunk):
            n = min(chunk, c.events - start)
            users = np.searchsorted(self.user_cdf, rng.random(n))
            users = np.minimum(users, c.n_users - 1)
            sequential = rng.random(n) < c.p_sequential
            popular_draw = rng.random(n)
            successor = rng.integers(1, c.successors + 1, size=n)
            for j in range(n):
                t = start + j
                u = int(users[j])
                for k, when in enumerate(switches):
                    if not switched[k][u] and when[u] <= t:
                        switched[k][u] = True
                        current[u] = self.drift_target[current[u]]
                cluster = int(current[u])
                members = self.cluster_items[cluster]
                prev = int(last_item[u])
                if sequential[j] and prev >= 0 and self.item_cluster[prev] == cluster:
                    pos = (int(self.item_position[prev]) + int(successor[j])) % len(members)
                    item = int(members[pos])
                else:
                    pick = int(np.searchsorted(self.cluster_cdf[cluster], popular_draw[j]))
                    item = int(members[min(pick, len(members) - 1)])
                last_item[u] = item
                yield ClickEvent(
                    event_id=f"s{c.seed}-{t}",
                    user_id=self.user_id(u),
                    item_id=self.item_id(item),
                    type="click",
                    ts=c.start_ts + t * c.step_ms,
                )

    def interactions(self) -> Interactions:
        users, items, ts = [], [], []
        for e in self.events():
            users.append(e.user_id)
            items.append(e.item_id)
            ts.append(e.ts)
        return Interactions(users, items, ts)


def abrupt_drift_stream(
    events: int = 60_000, drift_at: int | None = None, seed: int = 0, **overrides: int | float
) -> SyntheticStream:
    """The stream the replay and the drift tests use: one abrupt drift to new clusters.

    >>> s = abrupt_drift_stream(events=1_000, n_users=100, n_items=200)
    >>> s.drift_points()
    [500]
    """
    at = events // 2 if drift_at is None else drift_at
    config = SyntheticConfig(events=events, drifts=[DriftSpec(at=at)], seed=seed)
    for key, value in overrides.items():
        setattr(config, key, value)
    return SyntheticStream(config)
