"""Collection rules for the whole repository: what is collected and how much each test costs.

``pytest`` alone collects ``tests/`` and, River's way, the docstring examples of the packages
(``--doctest-modules``, see ``[tool.pytest.ini_options]``). Every item gets one cost marker from
where it lives, so ``pytest -m unit`` is the fast loop and ``make test`` runs the cheap ones first:

- ``unit``: ``tests/unit`` and the doctests; no server (``make test-unit`` skips the slow ones);
- ``integration``: ``tests/integration``; real broker, Redis and Triton on free ports;
- ``faults``: ``tests/faults``; workers and servers killed mid-stream.

``slow`` (over ~20 s each) is set by hand in the test files.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

ROOT = Path(__file__).resolve().parent

# Triton python backends import ``triton_python_backend_utils``, which only exists inside Triton.
collect_ignore_glob = ["model_repository/*"]

COST_BY_FOLDER = {"unit": "unit", "integration": "integration", "faults": "faults"}


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path) -> Generator[None, list[pytest.Collector], list]:
    """Docstring examples are collected from the packages, not from the test modules."""
    collected = yield
    if ROOT / "tests" in file_path.resolve().parents:
        return [c for c in collected if not isinstance(c, DoctestModule)]
    return collected


def cost_marker(path: Path) -> str:
    """The cost marker for a test collected from ``path`` (a doctest outside tests/ is unit)."""
    parts = path.resolve().relative_to(ROOT).parts
    if len(parts) > 1 and parts[0] == "tests":
        if parts[1] not in COST_BY_FOLDER:
            raise pytest.UsageError(f"{path}: tests live in tests/{{{','.join(COST_BY_FOLDER)}}}")
        return COST_BY_FOLDER[parts[1]]
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each item with its cost and run the cheap ones first (a broken unit fails fast)."""
    rank = {name: i for i, name in enumerate(COST_BY_FOLDER)}
    costs = {item.nodeid: cost_marker(item.path) for item in items}
    for item in items:
        item.add_marker(costs[item.nodeid])
    items.sort(key=lambda item: rank[costs[item.nodeid]])  # stable: files stay together
