"""Fault tests reuse the serving fixtures: a model repository and Triton servers by PID."""

from __future__ import annotations

from tests.integration.serving.conftest import serving_repo, start_triton

__all__ = ["serving_repo", "start_triton"]
