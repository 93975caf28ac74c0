"""``streamrec bench drift`` end to end on a small stream: after the drift a new version goes
live and serves, the report says so in one JSON line, and every process it started is gone.

No time is asserted (the seconds belong to the benchmark). The trainer gets a shorter fine-tune
budget and follow-up retrains through its settings section, as an operator would set them: a
candidate trained seconds after the alarm, on few post-drift clicks, may not pass the gate, and
a follow-up on fresher clicks answers the drift then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]

KEYS = {"drift_to_live_s", "target_s", "met", "status", "phases", "new_version",
        "detection_delay_events", "false_alarms", "retrain", "retrains", "rate_eps", "clicks",
        "versions_served", "trainer", "decisions", "machine", "servers", "logs"}
PHASES = {"drift_detected_s", "retrain_started_s", "published_s", "triton_ready_s",
          "first_recommendation_s"}


def test_bench_drift_puts_a_new_version_live_and_reports_its_phases() -> None:
    env = {**os.environ, "STREAMREC_TRAINER__FINETUNE_BUDGET_S": "45",
           "STREAMREC_TRAINER__COOLDOWN_S": "20", "STREAMREC_TRAINER__FOLLOWUPS": "3",
           "STREAMREC_TRAINER__FOLLOWUP_EVERY_S": "20"}
    run = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "bench", "drift", "--warm-events", "2000",
         "--live-events", "1200", "--users", "200", "--items", "300", "--rate", "60",
         "--bootstrap-epochs", "4", "--timeout", "420", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=660, env=env,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert KEYS <= set(report) and set(report["phases"]) == PHASES
    assert report["status"] == "live"
    # the trainer's version, promoted in answer to the drift, after the catalogue's version
    new = report["new_version"]
    kinds = [(d["type"], d.get("model")) for d in report["decisions"]]
    assert ("promote", new) in kinds and kinds.index(("promote", new)) > kinds.index(
        next(k for k in kinds if k[0] == "catalog_refresh"))
    assert report["retrain"]["reason"] in ("drift", "followup")
    assert report["retrain"]["decision"] == "promote"
    assert new in report["versions_served"]
    # the phases come in order, each one reached
    times = [report["phases"][p] for p in ("drift_detected_s", "retrain_started_s",
                                           "published_s", "first_recommendation_s")]
    assert all(t is not None for t in times) and times == sorted(times)
    assert report["drift_to_live_s"] == report["phases"]["first_recommendation_s"]
    assert report["detection_delay_events"] >= 0
    assert report["trainer"]["finetune_budget_s"] == 45
    # every server and service the command started is gone
    pids = list(report["servers"].values())
    assert len(pids) == 6 and not [pid for pid in pids if psutil.pid_exists(pid)
                                   and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
