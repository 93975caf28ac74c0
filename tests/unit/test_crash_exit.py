"""After an agent's crash the worker exits even when its graceful stop hangs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HANGING_AFTER_A_CRASH = """
import threading
from streams.app import exit_if_still_running
exit_if_still_running(0.2)
threading.Event().wait()  # a stop that never finishes
"""


def test_a_hanging_stop_after_a_crash_still_exits_non_zero() -> None:
    run = subprocess.run([sys.executable, "-c", HANGING_AFTER_A_CRASH], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "did not stop within 0 s of its agent's crash" in run.stderr
