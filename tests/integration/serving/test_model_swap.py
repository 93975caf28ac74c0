"""Hot model swap: a new version goes live mid-stream, pin and rollback switch back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from inference import codec, testing_model
from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core import versions
from streamrec.core.ports import ModelUnavailable

pytestmark = pytest.mark.timeout(120)

SEQUENCES = [[f"i{n}", f"i{n + 1}", f"i{n + 2}"] for n in range(1, 40)]


def expected(version_dir: Path, sequence: list[str], k: int) -> list[str]:
    """What in-process onnxruntime answers for ``sequence`` with this version."""
    import onnxruntime as ort

    vocab = versions.Vocabulary.load(version_dir)
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    items, scores = session.run(["top_items", "top_scores"], {
        "item_seq": codec.encode_sequences(vocab, [sequence]),
        "exclude_items": np.zeros((1, 1), dtype=np.int64),
    })
    return [item for item, _ in codec.decode(vocab, items, scores, k)[0]]


async def _until(condition, timeout_s: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


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

    async def run() -> None:
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              timeout_s=5.0, watch_interval_s=0.2)
        async with ModelClient(config) as client:
            stop = asyncio.Event()
            callers = [asyncio.create_task(caller(client, i, stop)) for i in range(8)]
            await asyncio.sleep(0.5)
            # version 2: other weights and 20 more items
            version = testing_model.build_version(model_dir, n_items=320, seed=7)
            assert version == 2
            await _until(lambda: client.live is not None and client.live.version == 2, 30)
            await asyncio.sleep(0.5)
            assert client.stats.version_switches == 1

            # rollback = pin the previous version; Triton still has it loaded (latest 2)
            versions.write_pin(serving_repo, "sasrec", 1, reason="test rollback")
            await _until(lambda: client.live is not None and client.live.version == 1, 10)
            await asyncio.sleep(0.3)
            versions.write_pin(serving_repo, "sasrec", None)
            await _until(lambda: client.live is not None and client.live.version == 2, 10)
            await asyncio.sleep(0.3)
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
