"""A small model that honours the model-artifact contract, for tests and benchmarks.

It is built with numpy and the ``onnx`` helper API (no torch) and has the served model's shape:
``item_seq`` [B, seq_len] and ``exclude_items`` [B, E] in, ``top_items``/``top_scores`` [B, K] out,
scoring against the ``item_embeddings`` initializer [V+1, d]. The user vector is a recency-weighted
mean of the sequence's embeddings passed through a dense layer; scores are dot products; index 0
and the excluded items are masked with -inf before TopK.

``write_model_repository`` lays out a whole repository (GPU ``config.pbtxt``, the CPU variant in
``configs/cpu.pbtxt``, numbered versions with the python-backend ``model.py``, model cards) like
the one training publishes, so the server, client, swap and catalogue code are tested against the
real Triton without waiting for a trained model. The python backend is production's own file,
``model_repository/sasrec/model.py`` (:data:`SASREC_PYTHON_BACKEND`): tests run what Triton runs.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from streamrec.core import versions
from streamrec.core.model_card import DEFAULT_SEQ_LEN, ModelCard, write_model_card

TOP_K = 100
TEXT_DIM = 384
OPSET = 17
# the one sasrec python backend: what Triton loads in production, copied into every version
SASREC_PYTHON_BACKEND = (
    Path(__file__).resolve().parents[1] / "model_repository" / "sasrec" / "model.py"
)


def sequence_model(  # noqa: ANN201
    item_embeddings: np.ndarray, dense: np.ndarray, k: int = TOP_K,
    seq_len: int = DEFAULT_SEQ_LEN,
):
    """The ONNX graph (an ``onnx.ModelProto``) of the contract's ``model.onnx``."""
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(1, seq_len + 1, dtype=np.float32) / seq_len).reshape(1, seq_len, 1)
    inits = [
        numpy_helper.from_array(item_embeddings.astype(np.float32), "item_embeddings"),
        numpy_helper.from_array(dense.astype(np.float32), "dense"),
        numpy_helper.from_array(weights, "recency"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array(-np.inf, dtype=np.float32), "neg_inf"),
        numpy_helper.from_array(np.array([k], dtype=np.int64), "k"),
    ]
    node = helper.make_node
    nodes = [
        node("Gather", ["item_embeddings", "item_seq"], ["seq_emb"], axis=0),
        node("Greater", ["item_seq", "zero_i"], ["is_item"]),
        node("Cast", ["is_item"], ["mask2"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["mask2", "axis1_last"], ["mask3"]),
        node("Mul", ["mask3", "recency"], ["w"]),
        node("Mul", ["seq_emb", "w"], ["weighted"]),
        node("ReduceSum", ["weighted", "axis1"], ["summed"], keepdims=0),
        node("ReduceSum", ["w", "axis1"], ["wsum"], keepdims=0),
        node("Add", ["wsum", "eps"], ["wsum_eps"]),
        node("Div", ["summed", "wsum_eps"], ["mean"]),
        node("MatMul", ["mean", "dense"], ["user_pre"]),
        node("Tanh", ["user_pre"], ["user"]),
        node("Transpose", ["item_embeddings"], ["table_t"], perm=[1, 0]),
        node("MatMul", ["user", "table_t"], ["scores"]),
        # index 0 (padding) is always masked: prepend a column of zeros to the exclusions
        node("Slice", ["item_seq", "zero_i", "axis1", "axis1"], ["first_col"]),
        node("Mul", ["first_col", "zero_i"], ["zero_col"]),
        node("Concat", ["zero_col", "exclude_items"], ["excluded"], axis=1),
        node("Shape", ["excluded"], ["excluded_shape"]),
        node("Expand", ["neg_inf", "excluded_shape"], ["minus_inf"]),
        node("ScatterElements", ["scores", "excluded", "minus_inf"], ["masked"], axis=1),
        node("TopK", ["masked", "k"], ["top_scores", "top_items"], axis=1),
    ]
    inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis1_last"))
    graph = helper.make_graph(
        nodes,
        "sequence_model",
        [
            helper.make_tensor_value_info("item_seq", TensorProto.INT64, ["batch", seq_len]),
            helper.make_tensor_value_info("exclude_items", TensorProto.INT64, ["batch", "E"]),
        ],
        [
            helper.make_tensor_value_info("top_items", TensorProto.INT64, ["batch", k]),
            helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["batch", k]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def item_tower(projection: np.ndarray):  # noqa: ANN201
    """``text_vectors`` [B, 384] -> ``item_vectors`` [B, d]: a linear map."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["text_vectors", "projection"], ["item_vectors"])],
        "item_tower",
        [helper.make_tensor_value_info("text_vectors", TensorProto.FLOAT, ["batch", TEXT_DIM])],
        [helper.make_tensor_value_info(
            "item_vectors", TensorProto.FLOAT, ["batch", projection.shape[1]]
        )],
        [numpy_helper.from_array(projection.astype(np.float32), "projection")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


class HashingTextEncoder:
    """A deterministic stand-in for MiniLM in tests: hashed word counts, L2-normalised."""

    dim = TEXT_DIM

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[row, h % TEXT_DIM] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def item_ids(n_items: int, prefix: str = "i") -> list[str]:
    return [f"{prefix}{i}" for i in range(1, n_items + 1)]


def build_version(
    model_dir: Path,
    *,
    n_items: int = 300,
    dim: int = 32,
    seed: int = 0,
    k: int = TOP_K,
    seq_len: int = DEFAULT_SEQ_LEN,
    version: int | None = None,
) -> int:
    """Build one complete version (model, item tower, vocab, card, model.py); publish it."""
    import onnx

    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, 1.0, size=(n_items + 1, dim)).astype(np.float32)
    table[0] = 0.0
    dense = (np.eye(dim) + rng.normal(0.0, 0.3, size=(dim, dim))).astype(np.float32)
    projection = rng.normal(0.0, 1.0, size=(TEXT_DIM, dim)).astype(np.float32)
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = versions.staging_dir(model_dir)
    try:
        onnx.save(sequence_model(table, dense, k, seq_len), str(staged / versions.MODEL_FILE))
        onnx.save(item_tower(projection), str(staged / versions.ITEM_TOWER_FILE))
        versions.Vocabulary(item_ids(n_items)).save(staged)
        write_model_card(staged, ModelCard(
            n_items=n_items, seq_len=seq_len, k=k, kind="testing", model_name="testing_model",
            seed=seed, config={"n_items": n_items, "dim": dim, "k": k},
        ))
        shutil.copy(SASREC_PYTHON_BACKEND, staged / "model.py")
        return versions.publish(model_dir, staged, version)
    except BaseException:
        versions.discard_staging(staged)
        raise


CPU_CONFIG = """\
# CPU variant (embedded Triton, tests): the python backend runs model.onnx with onnxruntime.
name: "{name}"
backend: "python"
max_batch_size: {max_batch}
version_policy: {{ latest: {{ num_versions: 2 }} }}
input [
  {{ name: "item_seq", data_type: TYPE_INT64, dims: [ {seq_len} ] }},
  {{ name: "exclude_items", data_type: TYPE_INT64, dims: [ -1 ], allow_ragged_batch: true }}
]
output [
  {{ name: "top_items", data_type: TYPE_INT64, dims: [ {k} ] }},
  {{ name: "top_scores", data_type: TYPE_FP32, dims: [ {k} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
parameters: {{ key: "intra_op_threads", value: {{ string_value: "{threads}" }} }}
"""

GPU_CONFIG = """\
# GPU production config: the native onnxruntime backend of the NGC tritonserver image.
name: "{name}"
platform: "onnxruntime_onnx"
default_model_filename: "model.onnx"
max_batch_size: {max_batch}
version_policy: {{ latest: {{ num_versions: 2 }} }}
input [
  {{ name: "item_seq", data_type: TYPE_INT64, dims: [ {seq_len} ] }},
  {{ name: "exclude_items", data_type: TYPE_INT64, dims: [ -1 ] }}
]
output [
  {{ name: "top_items", data_type: TYPE_INT64, dims: [ {k} ] }},
  {{ name: "top_scores", data_type: TYPE_FP32, dims: [ {k} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}
instance_group [ {{ kind: KIND_GPU, count: 1 }} ]
"""


def write_configs(
    model_dir: Path,
    *,
    name: str = "sasrec",
    max_batch: int = 64,
    delay_us: int = 2000,
    k: int = TOP_K,
    seq_len: int = DEFAULT_SEQ_LEN,
    threads: int = 1,
) -> None:
    """Write ``config.pbtxt`` (GPU) and ``configs/cpu.pbtxt`` (CPU variant) into ``model_dir``."""
    values = {"name": name, "max_batch": max_batch, "delay_us": delay_us, "k": k,
              "seq_len": seq_len, "threads": threads}
    (model_dir / "configs").mkdir(parents=True, exist_ok=True)
    (model_dir / "configs" / "cpu.pbtxt").write_text(CPU_CONFIG.format(**values))
    (model_dir / "config.pbtxt").write_text(GPU_CONFIG.format(**values))


def write_model_repository(
    repository: Path, *, name: str = "sasrec", n_items: int = 300, dim: int = 32,
    seed: int = 0, threads: int = 1, delay_us: int = 2000,
) -> Path:
    """A repository with the configs and version 1 of the testing model; returns model dir."""
    model_dir = repository / name
    write_configs(model_dir, name=name, threads=threads, delay_us=delay_us)
    build_version(model_dir, n_items=n_items, dim=dim, seed=seed)
    return model_dir
