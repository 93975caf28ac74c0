"""``streamrec bench e2e`` end to end, cheaply: two variants at a low rate, the report's shape.

No timing is asserted (numbers belong to the benchmark): only that the command starts its own
servers, answers the events of every variant, reports what the README's table shows, and stops
what it started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

FIELDS = {"offered_eps", "in_eps", "out_eps", "p50_ms", "p95_ms", "p99_ms", "max_ms",
          "lag_events", "fallback_share", "cpu_us_per_event", "peak_rss_mb", "answered", "steps",
          "rss_mb_start", "rss_mb_end", "rss_growth_pct", "rss_series"}


def test_bench_e2e_reports_every_variant_in_one_json_line(tmp_path: Path) -> None:
    picture = tmp_path / "rss.png"
    run = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "bench", "e2e", "--rate", "100", "--duration",
         "3", "--warmup", "1", "--variants", "faust-baseline,worker-no-model", "--json",
         "--plot", str(picture)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["mode"] == "rate"
    assert set(report["variants"]) == {"faust-baseline", "worker-no-model"}
    for name, variant in report["variants"].items():
        assert FIELDS <= set(variant), name
        assert variant["answered"] > 0, name
        assert variant["unanswered"] == 0, name
        assert {"worker", "broker", "redis", "loadgen"} <= set(variant["cpu_us_per_event"])
        assert variant["peak_rss_mb"]["worker"] > 0
        # the soak's series: RSS of every process sampled through the measured window
        assert len(variant["rss_series"]) >= 2
        assert variant["rss_mb_end"]["worker"] > 0 and "worker" in variant["rss_growth_pct"]
    assert picture.stat().st_size > 0  # rate mode plots RSS over time
    # the stream recommenders alone answer with the fallback label
    assert report["variants"]["worker-no-model"]["fallback_share"] == 1.0
    assert report["variants"]["faust-baseline"]["fallback_share"] == 0.0
    # every server and variant process the command started is gone
    started = [*report["servers"].values(), *(v["pid"] for v in report["variants"].values())]
    assert started and not [pid for pid in started if psutil.pid_exists(pid)
                            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
