"""The embedded Triton: the real tritonserver 2.51 shipped in the ``nvidia-pytriton`` wheel.

Only the python backend exists in that build, so the CPU variant of each model
(``configs/cpu.pbtxt``, selected with ``--model-config-name=cpu``) wraps the same ONNX file in a
python-backend ``model.py``; a GPU deployment uses the NGC image's native onnxruntime backend and
``config.pbtxt``. What running it needs (measured, see ENVIRONMENT.md):

- a backend directory ``python/`` holding ``libtriton_python.so``,
  ``triton_python_backend_utils.py`` and the stub built for the running Python version
  (:func:`build_backend_dir`);
- ``LD_LIBRARY_PATH`` = this interpreter's ``LIBDIR`` + ``site-packages/nvidia_pytriton.libs``
  (else the stub loads the system libpython and fails);
- this environment's ``bin`` first on ``PATH`` so the stub imports our numpy and onnxruntime.

Servers bind 127.0.0.1 only and are stopped by PID, never by name. Test fixtures and
``streamrec up`` (:func:`start_embedded_triton`) use the same functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core.atomic import copy_file_atomic
from streamrec.core.config import Settings, UserError
from streamrec.core.embedded import LOOPBACK, free_port, pid_alive, port_is_taken, stop_pid

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TritonProcess:
    """A running tritonserver: its PID, ports and log."""

    pid: int
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    repo: Path | None = None

    @property
    def grpc_address(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise UserError("the embedded Triton needs nvidia-pytriton==0.7.0") from exc
    return Path(next(iter(pytriton.__path__))) / "tritonserver"


def tritonserver_binary() -> Path:
    path = pytriton_root() / "bin" / "tritonserver"
    if not path.exists():
        raise UserError(f"tritonserver not found at {path}")
    return path


def build_backend_dir(target: Path) -> Path:
    """Assemble ``target/python/`` (library, utils, stub for this Python); returns ``target``."""
    root = pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise UserError(f"no Triton python backend stub for Python {version} in {stub.parent}")
    backend = target / "python"
    backend.mkdir(parents=True, exist_ok=True)
    sources = [
        root / "backends" / "python" / "libtriton_python.so",
        root / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ]
    for source in sources:
        dest = backend / source.name
        if not dest.exists() or dest.stat().st_size != source.stat().st_size:
            copy_file_atomic(source, dest)
    return target


def server_environment() -> dict[str, str]:
    """The environment tritonserver and its python stubs need (see module docstring)."""
    env = dict(os.environ)
    libs = [
        sysconfig.get_config_var("LIBDIR") or "",
        str(pytriton_root().parent.parent / "nvidia_pytriton.libs"),
    ]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # the stub imports model.py; a __pycache__ written into a version directory changes its
    # mtime and makes poll mode reload the model once more
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_triton(
    repo: Path,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    log_path: Path | None = None,
    *,
    config_name: str = "cpu",
    control_mode: str = "poll",
    poll_secs: int = 1,
    backend_dir: Path | None = None,
    wait: bool = True,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> TritonProcess:
    """Start tritonserver on 127.0.0.1 against ``repo``; wait until ready unless ``wait=False``.

    Ports default to free ones. ``control_mode="poll"`` loads newly published versions by
    itself (every ``poll_secs``); ``"explicit"`` loads every model at start and then only on
    request. The process runs in its own session; stop it with :func:`stop_triton`.
    """
    repo = Path(repo).resolve()
    http_port, grpc_port, metrics_port = (
        http_port or free_port(), grpc_port or free_port(), metrics_port or free_port()
    )
    for port in (http_port, grpc_port, metrics_port):
        if port_is_taken(port):
            raise UserError(f"port {port} on {LOOPBACK} is already taken; cannot start Triton")
    log_path = Path(log_path or repo.parent / "triton.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    backend_dir = build_backend_dir(backend_dir or log_path.parent / "triton-backends")
    argv = [
        str(tritonserver_binary()),
        f"--model-repository={repo}",
        f"--backend-directory={backend_dir}",
        f"--model-config-name={config_name}",
        f"--http-address={LOOPBACK}", f"--http-port={http_port}",
        f"--grpc-address={LOOPBACK}", f"--grpc-port={grpc_port}",
        f"--metrics-address={LOOPBACK}", f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        "--pinned-memory-pool-byte-size=0",
        "--cuda-memory-pool-byte-size=0:0",
        "--exit-on-error=false",
        "--exit-timeout-secs=5",
        f"--model-control-mode={control_mode}",
    ]
    if control_mode == "poll":
        argv.append(f"--repository-poll-secs={poll_secs}")
    elif control_mode == "explicit":
        argv.append("--load-model=*")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=server_environment(), start_new_session=True,
        )
    server = TritonProcess(proc.pid, http_port, grpc_port, metrics_port, log_path, proc, repo)
    if wait:
        try:
            wait_until_ready(server, ready_timeout_s)
        except BaseException:
            stop_triton(server)
            raise
    return server


def _http(port: int, path: str, body: bytes | None = None, timeout_s: float = 1.0) -> Any:
    """GET (or POST ``body``) Triton's HTTP API; the decoded JSON, {} for an empty 200, or None."""
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
            return json.loads(text) if text else {}
    except (urllib.error.URLError, OSError, ValueError):
        return None


def repository_index(http_port: int) -> list[dict[str, Any]] | None:
    """Triton's repository index: ``[{"name", "version", "state", "reason"}, ...]``."""
    index = _http(http_port, "/v2/repository/index", body=b"{}")
    return index if isinstance(index, list) else None


def model_ready(http_port: int, model: str, version: int | None = None) -> bool:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
    return _http(http_port, path) is not None


def servable_models(repo: Path) -> list[str]:
    """Models in ``repo`` with a config and at least one numbered version directory."""
    if not repo.is_dir():
        return []
    names = []
    for model_dir in sorted(p for p in repo.iterdir() if p.is_dir()):
        has_config = (model_dir / "config.pbtxt").exists() or (model_dir / "configs").is_dir()
        if has_config and any(p.is_dir() and p.name.isdigit() for p in model_dir.iterdir()):
            names.append(model_dir.name)
    return names


def is_ready(server: TritonProcess, models: list[str]) -> bool:
    """Live, and every model in ``models`` READY (models without a version are not waited for)."""
    if _http(server.http_port, "/v2/health/live") is None:
        return False
    return all(model_ready(server.http_port, name) for name in models)


def wait_until_ready(server: TritonProcess, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until the server is live and every servable model in its repository is READY;
    raise (with the log's tail) when it exits, a model fails to load, or time runs out."""
    deadline = time.monotonic() + timeout_s
    models = servable_models(server.repo) if server.repo else []
    while time.monotonic() < deadline:
        if is_ready(server, models):
            return
        if server.proc is not None and server.proc.poll() is not None:
            raise UserError(
                f"tritonserver exited with code {server.proc.returncode}:\n{server.log_tail()}"
            )
        if server.proc is None and not pid_alive(server.pid):
            raise UserError(f"tritonserver (pid {server.pid}) is gone:\n{server.log_tail()}")
        failed = [m for m in repository_index(server.http_port) or []
                  if m.get("state") == "UNAVAILABLE" and m.get("reason")
                  and "unloaded" not in m.get("reason", "")]
        if failed:
            reasons = "; ".join(f"{m['name']}:{m.get('version', '')} {m['reason']}"
                                for m in failed)
            raise UserError(f"Triton could not load {reasons}")
        time.sleep(0.1)
    raise UserError(f"Triton not ready within {timeout_s:.0f} s:\n{server.log_tail()}")


def wait_model_version(
    server: TritonProcess, model: str, version: int, timeout_s: float = 30.0
) -> None:
    """Block until ``model`` version ``version`` is READY (e.g. after publishing it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if model_ready(server.http_port, model, version):
            return
        time.sleep(0.1)
    raise UserError(f"{model}:{version} not READY within {timeout_s:.0f} s:\n{server.log_tail()}")


def stop_triton(server: TritonProcess, timeout_s: float = 10.0) -> None:
    """Stop the server by its PID (SIGTERM, then SIGKILL after ``timeout_s``), then whatever is
    left of its process group: the python backend's stubs outlive a SIGKILLed server."""
    stop_pid(server.pid, timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGKILL)  # its own group: started in a new session
    if server.proc is not None:
        try:
            server.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


def has_servable_model(repo: Path) -> bool:
    """True when some model in ``repo`` has a config and at least one numbered version."""
    return bool(servable_models(repo))


def start_embedded_triton(settings: Settings, log_dir: Path) -> TritonProcess | None:
    """What ``streamrec up`` calls: Triton (CPU variant, poll mode) on free loopback ports.

    Returns None when the model repository has no version to serve yet.
    """
    repo = settings.triton.model_repository
    if not has_servable_model(repo):
        return None
    return start_triton(
        repo, log_path=log_dir / "triton.log", backend_dir=settings.home / "triton-backends",
    )
