"""Run the Triton server bundled in the `nvidia-pytriton` wheel on this (CPU) machine.

    python -m engines.triton_server --repository REPO [--grpc-port 8001] [--site DIR]

For CPU servers, the tests and the benchmark; a GPU server runs NVIDIA's Triton container instead
(docs/scale-out.md). The bundle needs an environment of its own, a pip `--target` folder:

    pip install --target .venv/triton-site nvidia-pytriton==0.7.0 onnxruntime==1.32.0 "numpy<2"

because nvidia-pytriton pins numpy < 2 and Triton 2.51's Python stub, run with NumPy 2, returns
empty tensors without an error. The stub is an embedded interpreter: it loads the libpython of
the interpreter running this module (LD_LIBRARY_PATH to its lib folder) and finds the folder's
packages through AFFECT_MONITOR_PYTHONPATH (it ignores PYTHONPATH).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines.base import EngineUnavailable

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SITE_ENV = "AFFECT_MONITOR_TRITON_SITE"  # overrides the default site folder
DEFAULT_SITE = ROOT / ".venv" / "triton-site"
INSTALL_HINT = (
    f'pip install --target {DEFAULT_SITE} nvidia-pytriton==0.7.0 onnxruntime==1.32.0 "numpy<2"'
)


def default_site() -> Path:
    return Path(os.environ.get(SITE_ENV, DEFAULT_SITE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerOptions:
    repository: Path
    site: Path = field(default_factory=default_site)  # the pip --target folder of the bundle
    host: str = "127.0.0.1"  # loopback by default: affect estimates are sensitive data
    grpc_port: int = 8001
    start_timeout_s: float = 60.0
    exit_timeout_s: int = 2  # Triton waits this long for live sequences on SIGTERM (default 30)
    log_file: Path | None = None  # server log; None: a temporary file


def missing(site: Path) -> list[str]:
    """What keeps the bundled server from starting here, as short reasons (empty: nothing)."""
    gaps = []
    if not (site / "pytriton" / "tritonserver" / "bin" / "tritonserver").is_file():
        return [f"no Triton server bundle in {site} ({INSTALL_HINT})"]  # the rest would repeat
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not (site / "pytriton" / "tritonserver" / "python_backend_stubs" / ver).is_dir():
        gaps.append(f"the bundle in {site} has no Python {ver} backend stub")
    if not (site / "onnxruntime").is_dir() or not (site / "numpy").is_dir():
        gaps.append(f"numpy<2 and onnxruntime are missing from {site} ({INSTALL_HINT})")
    return gaps


class BundledServer:
    """A tritonserver child process on loopback ports; `with BundledServer(opts) as url:`."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.process: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"{self.options.host}:{self.options.grpc_port}"

    def _backends(self, root: Path) -> Path:
        """Triton looks for the stub beside libtriton_python.so; the wheel keeps one stub per
        Python version apart, so a backend folder is assembled from links for this one."""
        bundle = self.options.site / "pytriton" / "tritonserver"
        python = root / "backends" / "python"
        python.mkdir(parents=True)
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        for src in (
            bundle / "backends" / "python" / "libtriton_python.so",
            bundle / "backends" / "python" / "triton_python_backend_utils.py",
            bundle / "python_backend_stubs" / ver / "triton_python_backend_stub",
        ):
            (python / src.name).symlink_to(src)
        return root / "backends"

    def start(self) -> str:
        gaps = missing(self.options.site)
        if gaps:
            raise EngineUnavailable(f"bundled Triton server unavailable: {'; '.join(gaps)}")
        self._tmp = tempfile.TemporaryDirectory(prefix="triton-")
        root = Path(self._tmp.name)
        log_path = self.options.log_file or root / "server.log"
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["AFFECT_MONITOR_PYTHONPATH"] = str(self.options.site)
        binary = self.options.site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        cmd = [
            str(binary), f"--model-repository={self.options.repository}",
            f"--backend-directory={self._backends(root)}",
            f"--grpc-address={self.options.host}", f"--grpc-port={self.options.grpc_port}",
            "--allow-http=false", "--allow-metrics=false", "--log-verbose=0",
            "--exit-on-error=true", "--strict-readiness=true",
            f"--exit-timeout-secs={self.options.exit_timeout_s}",
        ]  # fmt: skip
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.log_path = log_path
        self._wait_ready()
        log.info("Triton server (pid %d) serving %s at %s", self.process.pid,
                 self.options.repository, self.url)  # fmt: skip
        return self.url

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(self.url)
        deadline = time.monotonic() + self.options.start_timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    tail = Path(self.log_path).read_text(errors="replace").strip().splitlines()
                    raise EngineUnavailable(
                        f"Triton server exited with {self.process.returncode}: "
                        f"{tail[-1] if tail else 'no log'} (log {self.log_path})"
                    )
                try:
                    if client.is_server_ready():
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise EngineUnavailable(
            f"Triton server not ready after {self.options.start_timeout_s:.0f} s (log "
            f"{self.log_path})"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Triton unloads models and exits
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None and self.options.log_file is None:
            # Keep the log of a failed start readable; the backend links go either way.
            shutil.rmtree(Path(self._tmp.name) / "backends", ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.triton_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repository", required=True, type=Path)
    parser.add_argument("--site", type=Path, default=default_site())
    parser.add_argument("--host", default="127.0.0.1", help="gRPC address (loopback default)")
    parser.add_argument("--grpc-port", type=int, default=8001)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = BundledServer(ServerOptions(args.repository.resolve(), args.site, args.host,
                                         args.grpc_port))  # fmt: skip
    try:
        server.start()
    except EngineUnavailable as exc:
        log.error("%s", exc)
        return 1
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
