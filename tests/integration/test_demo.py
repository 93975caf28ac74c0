"""``streamrec demo`` (what ``make demo`` runs) end to end: its own stack, two workers, a summary.

The model path is covered by the serving tests; here the stream recommenders answer
(``--no-model``), so the test does not train a model first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~25 s: a whole stack and two workers


def test_demo_answers_every_valid_event_and_dead_letters_the_rest(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STREAMREC_HOME": str(tmp_path / "home"),
        "STREAMREC_OBSERVABILITY__PORT": "0",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "REDIS_URL": "",
        "TRITON_URL": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "demo", "--events", "300", "--workers", "2",
         "--no-model", "--json"],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events_valid"] == 300 and summary["workers"] == 2
    assert summary["recommendations"] == summary["events_valid"]
    assert summary["dlq"] == summary["events_sent"] - summary["events_valid"] > 0
    assert sum(summary["models"].values()) == 300
