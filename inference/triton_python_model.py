"""Triton python-backend model: runs the version's ``model.onnx`` with onnxruntime (CPU variant).

Copied into each version directory as ``model.py``. Triton's dynamic batcher hands ``execute`` a
list of requests; they are run as one onnxruntime batch. ``exclude_items`` is ragged (each
request has its own width, ``allow_ragged_batch`` in the config): the rows are right-padded with
0, the padding index, which the model masks anyway.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by Triton's python backend


class TritonPythonModel:
    """Serves ``<model_dir>/<version>/model.onnx``."""

    def initialize(self, args: dict[str, str]) -> None:
        import json

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads") or 0)
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:  # noqa: D102 - Triton's interface
        seqs, excludes = [], []
        for request in requests:
            seqs.append(pb_utils.get_input_tensor_by_name(request, "item_seq").as_numpy())
            excludes.append(pb_utils.get_input_tensor_by_name(request, "exclude_items").as_numpy())
        width = max(e.shape[1] for e in excludes)
        padded = [
            e if e.shape[1] == width else np.pad(e, ((0, 0), (0, width - e.shape[1])))
            for e in excludes
        ]
        results = self.session.run(
            self.outputs,
            {"item_seq": np.concatenate(seqs), "exclude_items": np.concatenate(padded)},
        )
        responses, start = [], 0
        for seq in seqs:
            end = start + seq.shape[0]
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value[start:end]))
                       for name, value in zip(self.outputs, results, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = end
        return responses

    def finalize(self) -> None:
        self.session = None
