"""Fixtures: the real tritonserver (nvidia-pytriton's 2.51) on 127.0.0.1, stopped by PID.

``serving_repo`` is a fresh model repository holding version 1 of the testing model
(:mod:`inference.testing_model`, the artifact contract without training); ``start_triton``
starts servers against it (CPU variant, poll mode) and stops every one it started at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inference import testing_model
from inference.triton_server import TritonProcess, stop_triton
from inference.triton_server import start_triton as launch
from streamrec.core.embedded import pid_alive


@pytest.fixture
def serving_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "model_repository"
    testing_model.write_model_repository(repo)
    return repo


@pytest.fixture
def start_triton(tmp_path: Path) -> Iterator[Callable[..., TritonProcess]]:
    started: list[TritonProcess] = []

    def start(repo: Path, **kwargs: Any) -> TritonProcess:
        kwargs.setdefault("log_path", tmp_path / f"triton-{len(started)}.log")
        kwargs.setdefault("backend_dir", tmp_path / "triton-backends")
        server = launch(repo, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        if pid_alive(server.pid):
            stop_triton(server)


@pytest.fixture
def triton(serving_repo: Path, start_triton: Callable[..., TritonProcess]) -> TritonProcess:
    return start_triton(serving_repo)
