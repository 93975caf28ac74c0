"""Where the worker's ``user-state`` table lives: Faust's in-memory store or RocksDB.

``memory``: Faust's in-memory store, rebuilt from the table's changelog topic at every start.
``rocksdb``: Faust's RocksDB store (through ``rocksdict``), one database per partition under
the app's data directory (``STREAMREC_HOME/faust-data``): state may outgrow RAM, and a
restarted worker reads only the changelog written since its last local write.

The worker writes the table once per user per *batch* (``take_events``), while Faust's RocksDB
store files a write under the partition of the stream's current event, which in a batch is the
batch's last event, not necessarily the user's. :class:`UserStateStore` files each key under
the partition its changelog record goes to (Kafka's default partitioner, the one the clicks
producer and the changelog use), so a worker that is assigned a partition after a rebalance
finds its users' state in that partition's database.
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2
from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore

from streamrec.core.config import Settings, UserError

USER_STATE_TABLE = "user-state"
USER_STATE_STORE = "streamrec-rocksdb"
STORES.aliases[USER_STATE_STORE] = "streams.table_store:UserStateStore"


def table_store(settings: Settings) -> str:
    """``memory`` or ``rocksdb``: the configured store, else the broker profile's.

    >>> table_store(Settings(kafka={"profile": "embedded"}))
    'memory'
    >>> table_store(Settings(kafka={"profile": "kafka"}))
    'rocksdb'
    >>> table_store(Settings(kafka={"profile": "kafka"}, worker={"store": "memory"}))
    'memory'
    """
    store: str = settings.worker.store or settings.kafka.broker["table_store"]
    return store


def app_store_url(settings: Settings) -> str:
    """The Faust app's default store (tables written one event at a time)."""
    return f"{_checked(table_store(settings))}://"


def user_state_store_url(settings: Settings) -> str | None:
    """The ``user-state`` table's store: ``None`` (the app's) unless it is RocksDB.

    The URL names the table (the path Faust's RocksDB store gives it by default): Faust treats
    a URL without a path as no store at all and falls back to the app's.
    """
    if table_store(settings) != "rocksdb":
        return None
    return f"{USER_STATE_STORE}:{USER_STATE_TABLE}"


def _checked(store: str) -> str:
    if store == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            raise UserError("worker.store = rocksdb needs the rocksdict package (pip install "
                            "rocksdict), or set STREAMREC_WORKER__STORE=memory") from exc
    return store


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (aiokafka's, Java's) gives ``key``.

    >>> from aiokafka.partitioner import DefaultPartitioner
    >>> all(kafka_partition(k, 4) == DefaultPartitioner()(k, [0, 1, 2, 3], [0, 1, 2, 3])
    ...     for k in (b"u1", b"user-42", b"196"))
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class UserStateStore(RocksDBStore):
    """Faust's RocksDB store, each key filed under its changelog partition (see module doc)."""

    def _set(self, key: bytes, value: Any) -> None:
        partition = kafka_partition(key, self.table.partitions or 1)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)
