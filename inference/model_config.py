"""Model configurations read with Triton's own protobuf schema, and checked against the files.

``parse_config`` reads a ``config.pbtxt`` with ``tritonclient.grpc.model_config_pb2`` and
``google.protobuf.text_format``: a field Triton does not know is an error here too.
``check_model_dir`` says what would keep Triton from loading a model directory: the GPU config
(native onnxruntime backend) must name a model file each version has, the CPU variant
(python backend) needs ``model.py`` in each version, both must agree on inputs and outputs, and
each version's model card (``seq_len``, ``k``) must fit the declared ``item_seq`` and
``top_items`` shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamrec.core import versions
from streamrec.core.model_card import read_model_card

GPU_CONFIG = "config.pbtxt"
CPU_CONFIG = Path("configs") / "cpu.pbtxt"


def parse_config(path: Path) -> Any:
    """A ``ModelConfig`` message parsed from ``path`` (raises ``ParseError`` on bad text)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())


def _signature(config: Any) -> list[tuple[str, int, tuple[int, ...]]]:
    tensors = [*config.input, *config.output]
    return sorted((t.name, t.data_type, tuple(t.dims)) for t in tensors)


def _card_mismatches(
    path: Path, config: Any, model_dir: Path, model_versions: list[int]
) -> list[str]:
    """Versions whose model card's ``seq_len``/``k`` differ from the config's tensor shapes."""
    dims = {t.name: list(t.dims) for t in [*config.input, *config.output]}
    problems = []
    for version in model_versions:
        card = read_model_card(model_dir / str(version))
        for tensor, size in (("item_seq", card.seq_len), ("top_items", card.k)):
            if dims.get(tensor) not in (None, [size], [-1]):
                problems.append(f"{path}: {tensor} dims {dims[tensor]} but version {version}'s "
                                f"model card says {size}")
    return problems


def check_model_dir(model_dir: Path) -> list[str]:
    """Problems that would keep Triton from serving ``model_dir``; empty when none."""
    problems: list[str] = []
    model_versions = versions.list_versions(model_dir)
    if not model_versions:
        problems.append(f"{model_dir}: no published version")
    configs = {}
    for name in (GPU_CONFIG, CPU_CONFIG):
        path = model_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        try:
            configs[name] = config = parse_config(path)
        except Exception as exc:  # text_format.ParseError and friends
            problems.append(f"{path}: does not parse with Triton's schema: {exc}")
            continue
        if config.name and config.name != model_dir.name:
            problems.append(f"{path}: name {config.name!r} is not the directory's")
        if config.platform == "onnxruntime_onnx" or config.backend == "onnxruntime":
            needed = config.default_model_filename or "model.onnx"
        elif config.backend == "python":
            needed = "model.py"
        else:
            needed = config.default_model_filename
        for version in model_versions:
            if needed and not (model_dir / str(version) / needed).exists():
                problems.append(f"{path}: version {version} has no {needed}")
        problems += _card_mismatches(path, config, model_dir, model_versions)
    if len(configs) == 2:
        gpu, cpu = configs[GPU_CONFIG], configs[CPU_CONFIG]
        if _signature(gpu) != _signature(cpu):
            problems.append("config.pbtxt and configs/cpu.pbtxt declare different tensors")
        if gpu.max_batch_size != cpu.max_batch_size:
            problems.append("config.pbtxt and configs/cpu.pbtxt differ in max_batch_size")
    return problems
