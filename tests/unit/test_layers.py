"""The layers point one way and the worker never loads torch (README, "Architecture")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Imports, in a fresh interpreter, everything the stream worker's process imports: the CLI with
# all its subcommands registered, what `streamrec worker` imports, and every module of the
# worker's layers (kernel, serving client, worker). Prints the heavy modules that got loaded.
WORKER_IMPORTS = """
import importlib, json, pkgutil, sys

from streamrec.cli import build_parser

build_parser()
import faust.worker
import streams.app, streams.kafka_io, inference.client, streamrec.cli.stream

NOT_IMPORTABLE_HERE = set()  # modules that run inside Triton only (none in these packages)
for package in ("streamrec.core", "inference", "streams"):
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        if module.name not in NOT_IMPORTABLE_HERE:
            importlib.import_module(module.name)
heavy = ("torch", "transformers")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_the_worker_process_loads_neither_torch_nor_transformers() -> None:
    done = subprocess.run([sys.executable, "-c", WORKER_IMPORTS], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the worker's imports load {loaded[:10]}"


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
