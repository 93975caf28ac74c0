"""Triton python-backend model: all-MiniLM-L6-v2 (ONNX) text -> mean-pooled, L2-normalised
384-d embedding. The same ``model.onnx`` and ``tokenizer.json`` training uses
(``training/text_encoder.py``); template copied into ``text_encoder/1/`` on export.

Input ``text`` BYTES [B, 1] (UTF-8); output ``embedding`` FP32 [B, 384].
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

MAX_TOKENS = 64


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        threads = int(
            config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1")
        )
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = Tokenizer.from_file(os.path.join(version_dir, "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and (
            "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), options, providers=providers
        )

    def execute(self, requests: list) -> list:
        texts, sizes = [], []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            sizes.append(len(raw))
            texts.extend(
                t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw
            )
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        (vectors,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        responses, start = [], 0
        for size in sizes:
            chunk = vectors[start : start + size].astype(np.float32)
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("embedding", chunk)])
            )
            start += size
        return responses

    def finalize(self) -> None:
        self.session = None
