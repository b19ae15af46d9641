"""nginx for the live tests: Debian's package (installed with apt-get on first use, as
tests/live/browserproc.py installs chromium) running deploy/nginx/chorus.conf — the deployed
site file itself, rendered by deploy/render.py for loopback ports of the test's own — in a
private prefix under the test's tmp directory (its own main config, pid, logs and temp files;
the system's nginx configuration and service are never touched)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import ModuleType

from tests.live.harness import ROOT, free_port

NGINX_NAMES = ("nginx",)
SBIN = ("/usr/sbin/nginx",)


def _find_nginx() -> str | None:
    found = shutil.which("nginx")
    return found or next((path for path in SBIN if os.access(path, os.X_OK)), None)


def nginx_binary() -> str | None:
    """The nginx binary, installed with apt-get on first use where that is possible (root,
    Debian; the package's own service is not started where policy-rc.d says so, and never
    used); None when there is none and it cannot be installed."""
    found = _find_nginx()
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "nginx"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=False)
    return _find_nginx()


def load_render() -> ModuleType:
    """deploy/render.py (the script operators run), loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        "chorus_deploy_render", ROOT / "deploy" / "render.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_site(listen: str, instances: list[str]) -> str:
    """The deployed site for ``instances`` (``host:port``), listening on ``listen``."""
    return load_render().render(listen, "_", instances)


class Nginx:
    """``nginx`` in the foreground on 127.0.0.1:``port`` in front of ``instances`` (ports)."""

    def __init__(self, binary: str, prefix: Path, instances: list[int]) -> None:
        self.binary = binary
        self.prefix = prefix
        self.instances = instances
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def main_config(self, site: Path) -> str:
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers may use the prefix
        p = self.prefix
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\n"
            f"error_log {p}/error.log info;\nevents {{ worker_connections 1024; }}\n"
            "http {\n"
            f"    access_log {p}/access.log;\n"
            f"    client_body_temp_path {p}/body;\n    proxy_temp_path {p}/proxy;\n"
            f"    fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n"
            f"    scgi_temp_path {p}/scgi;\n"
            f"    include {site};\n"
            "}\n"
        )

    def start(self, timeout: float = 10.0) -> Nginx:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        site = self.prefix / "chorus.conf"
        site.write_text(
            render_site(f"127.0.0.1:{self.port}", [f"127.0.0.1:{p}" for p in self.instances])
        )
        config = self.prefix / "nginx.conf"
        config.write_text(self.main_config(site))
        command = [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(config),
            "-e",
            str(self.prefix / "error.log"),
        ]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() >= deadline:
                    self.stop()
                    raise AssertionError(f"nginx not listening: {self.log_tail()}") from None
                time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.prefix / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finishes open requests
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
