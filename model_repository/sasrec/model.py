"""Triton python-backend model: runs this version's ``model.onnx`` with onnxruntime (CPU).

The one sasrec python backend: kept at ``model_repository/sasrec/model.py``;
``training.export.publish_version`` copies it into every version directory, and so does the
testing model (``inference.testing_model``), so tests run the file production runs.

Requests that Triton's dynamic batcher hands over together are concatenated (``exclude_items``
right-padded with 0, the padding index) and run as one batch.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        threads = int(
            config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1")
        )
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests: list) -> list:
        seqs, excludes = [], []
        for request in requests:
            seqs.append(pb_utils.get_input_tensor_by_name(request, "item_seq").as_numpy())
            excludes.append(pb_utils.get_input_tensor_by_name(request, "exclude_items").as_numpy())
        width = max(e.shape[1] for e in excludes)
        padded = [np.pad(e, ((0, 0), (0, width - e.shape[1]))) for e in excludes]
        top_items, top_scores = self.session.run(
            ["top_items", "top_scores"],
            {
                "item_seq": np.concatenate(seqs).astype(np.int64, copy=False),
                "exclude_items": np.concatenate(padded).astype(np.int64, copy=False),
            },
        )
        responses, start = [], 0
        for seq in seqs:
            stop = start + len(seq)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("top_items", top_items[start:stop]),
                pb_utils.Tensor("top_scores", top_scores[start:stop].astype(np.float32)),
            ]))
            start = stop
        return responses

    def finalize(self) -> None:
        self.session = None
