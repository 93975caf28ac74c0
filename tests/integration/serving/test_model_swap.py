"""Hot model swap: a new version goes live mid-stream, pin and rollback switch back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from inference import codec, testing_model
from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core import versions
from streamrec.core.model_card import read_model_card
from streamrec.core.ports import ModelUnavailable
from tests.support import wait_until_async

pytestmark = pytest.mark.timeout(120)

SEQUENCES = [[f"i{n}", f"i{n + 1}", f"i{n + 2}"] for n in range(1, 40)]


def expected(version_dir: Path, sequence: list[str], k: int) -> list[str]:
    """What in-process onnxruntime answers for ``sequence`` with this version."""
    import onnxruntime as ort

    vocab = versions.Vocabulary.load(version_dir)
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    items, scores = session.run(["top_items", "top_scores"], {
        "item_seq": codec.encode_sequences(vocab, [sequence], read_model_card(version_dir).seq_len),
        "exclude_items": np.zeros((1, 1), dtype=np.int64),
    })
    return [item for item, _ in codec.decode(vocab, items, scores, k)[0]]


def test_version_switch_mid_stream_then_pin_and_rollback(
    triton: TritonProcess, serving_repo: Path
) -> None:
    model_dir = serving_repo / "sasrec"
    answers: list[tuple[int, str, list[str]]] = []
    failures: list[BaseException] = []

    async def caller(client: ModelClient, index: int, stop: asyncio.Event) -> None:
        sequence = SEQUENCES[index]
        while not stop.is_set():
            try:
                answer = await client.recommend([sequence], [[]], 10)
            except ModelUnavailable as exc:
                failures.append(exc)
            else:
                answers.append((index, answer.model, [i for i, _ in answer.lists[0]]))
            await asyncio.sleep(0.005)

    def answered_by(version: int, since: int) -> int:
        """How many answers after the ``since``-th came from ``version``."""
        return sum(label == f"sasrec:{version}" for _, label, _ in answers[since:])

    async def switch_to(version: int, client: ModelClient, timeout_s: float) -> None:
        """Wait until the client follows ``version`` and the callers got 40 answers from it."""
        since = len(answers)
        await wait_until_async(lambda: client.live is not None and client.live.version == version,
                               timeout_s, f"the client following version {version}")
        await wait_until_async(lambda: answered_by(version, since) >= 40, 10,
                               f"40 answers from version {version}")

    async def run() -> None:
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              timeout_s=5.0, watch_interval_s=0.2)
        async with ModelClient(config) as client:
            stop = asyncio.Event()
            callers = [asyncio.create_task(caller(client, i, stop)) for i in range(8)]
            await wait_until_async(lambda: answered_by(1, 0) >= 40, 10, "40 answers from version 1")
            # version 2: other weights and 20 more items
            version = testing_model.build_version(model_dir, n_items=320, seed=7)
            assert version == 2
            await switch_to(2, client, 30)
            assert client.stats.version_switches == 1

            # rollback = pin the previous version; Triton still has it loaded (latest 2)
            versions.write_pin(serving_repo, "sasrec", 1, reason="test rollback")
            await switch_to(1, client, 10)
            versions.write_pin(serving_repo, "sasrec", None)
            await switch_to(2, client, 10)
            stop.set()
            await asyncio.gather(*callers)

    asyncio.run(run())
    assert not failures, f"{len(failures)} requests failed during the swap: {failures[:3]}"
    labels = [label for _, label, _ in answers]
    assert set(labels) == {"sasrec:1", "sasrec:2"}
    # every answer is exactly what its version computes in process: vocabularies never mix
    want = {
        (label, index): expected(model_dir / label.split(":")[1], SEQUENCES[index], 10)
        for label in set(labels) for index in range(8)
    }
    for index, label, items in answers:
        assert items == want[(label, index)], (label, index)
    assert any(want[("sasrec:1", i)] != want[("sasrec:2", i)] for i in range(8))
    # per caller the sequence of versions is 1..1, 2..2, 1..1, 2..2 (one switch at a time)
    for index in range(8):
        mine = [label for i, label, _ in answers if i == index]
        changes = sum(a != b for a, b in zip(mine, mine[1:], strict=False))
        assert changes <= 3, mine
