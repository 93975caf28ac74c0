"""Triton serves the artifact exactly: same answers as in-process onnxruntime, batched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core import versions
from streamrec.core.model_card import read_model_card

pytestmark = pytest.mark.timeout(120)


def _inputs(n: int, seq_len: int, n_items: int = 300,
            seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    item_seq = np.zeros((n, seq_len), dtype=np.int64)
    exclude = np.zeros((n, 16), dtype=np.int64)
    for row in range(n):
        length = int(rng.integers(1, seq_len + 1))
        item_seq[row, -length:] = rng.integers(1, n_items + 1, size=length)
        exclude[row, :10] = rng.integers(1, n_items + 1, size=10)
    return item_seq, exclude


def test_triton_equals_in_process_onnxruntime(triton: TritonProcess, serving_repo: Path) -> None:
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    item_seq, exclude = _inputs(32, read_model_card(serving_repo / "sasrec" / "1").seq_len)
    session = ort.InferenceSession(str(serving_repo / "sasrec" / "1" / "model.onnx"))
    want_items, want_scores = session.run(
        ["top_items", "top_scores"], {"item_seq": item_seq, "exclude_items": exclude}
    )
    client = grpcclient.InferenceServerClient(triton.grpc_address)
    inputs = [grpcclient.InferInput("item_seq", list(item_seq.shape), "INT64"),
              grpcclient.InferInput("exclude_items", list(exclude.shape), "INT64")]
    inputs[0].set_data_from_numpy(item_seq)
    inputs[1].set_data_from_numpy(exclude)
    result = client.infer("sasrec", inputs, model_version="1")
    np.testing.assert_array_equal(result.as_numpy("top_items"), want_items)
    np.testing.assert_allclose(result.as_numpy("top_scores"), want_scores, rtol=1e-6)
    assert not np.isin(want_items, 0).any()
    for row in range(len(exclude)):
        assert not np.isin(want_items[row], exclude[row][exclude[row] > 0]).any()


def test_client_maps_ids_and_concurrent_callers_are_batched(
    triton: TritonProcess, serving_repo: Path
) -> None:
    import tritonclient.grpc as grpcclient

    vocab = versions.Vocabulary.load(serving_repo / "sasrec" / "1")
    sequences = [["i3", "i7", "unknown-item", "i42"], ["i100"], []]
    exclude = [["i5", "i9"], [], ["i1"]]

    async def run() -> tuple[list, list]:
        # single requests from 32 concurrent callers: Triton's dynamic batcher merges them
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              max_batch=1, timeout_s=5.0)
        async with ModelClient(config) as client:
            assert client.live is not None and client.live.label == "sasrec:1"
            answer = await client.recommend(sequences, exclude, k=10)
            assert answer.model == "sasrec:1"
            calls = [client.recommend([s], [[]], 5) for s in [["i1", f"i{n}"] for n in
                                                              range(2, 200)]]
            concurrent = await asyncio.gather(*calls)
            return answer.lists, concurrent

    lists, concurrent = asyncio.run(run())
    assert len(lists) == 3 and all(len(row) == 10 for row in lists)
    assert not {"i5", "i9"} & {item for item, _ in lists[0]}
    assert "i1" not in {item for item, _ in lists[2]}
    assert all(item in vocab.index_of for row in lists for item, _ in row)
    scores = [s for _, s in lists[0]]
    assert scores == sorted(scores, reverse=True)
    assert all(len(a.lists[0]) == 5 and a.model == "sasrec:1" for a in concurrent)

    stats = grpcclient.InferenceServerClient(triton.grpc_address).get_inference_statistics(
        "sasrec", as_json=True)
    batch_stats = stats["model_stats"][0]["batch_stats"]
    sizes = {int(b["batch_size"]) for b in batch_stats}
    assert max(sizes) > 1, f"no dynamic batching visible in Triton's statistics: {sizes}"
