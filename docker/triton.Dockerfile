# Triton 2.51 (NGC 24.10) with what streamrec's python-backend models import.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN pip install --no-cache-dir "numpy<2" onnxruntime tokenizers
