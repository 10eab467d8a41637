"""A throwaway JupyterLab for the browser test, and the fixture notebook set up for a run.

:func:`venv_kernelspec` writes a kernelspec that runs *this* interpreter (the project's venv);
:class:`Lab` starts ``jupyter lab`` on a free localhost port with its own config, data,
runtime, settings and workspaces folders and a random token, waits until it answers, and
stops it (its process group) afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat

FIXTURE_NOTEBOOK = Path(__file__).resolve().parent / "inspectors.ipynb"
KERNEL_NAME = "ilpnb-widgets-test"

# JupyterLab settings that keep a fresh profile quiet and render every cell (no windowing)
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def venv_kernelspec(data_dir: Path, env: dict[str, str] | None = None) -> str:
    """Write a kernelspec running ``sys.executable`` under ``DATA_DIR/kernels``; returns its name."""
    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ilpnb (project venv)", "language": "python", "env": env or {}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return KERNEL_NAME


def fixture_notebook(target: Path, run: Path, kernel: str = KERNEL_NAME) -> Path:
    """The fixture notebook with ``RUN`` set to ``run`` and the given kernel, written to ``target``."""
    nb = nbformat.read(str(FIXTURE_NOTEBOOK), as_version=4)
    params = [c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])]
    assert len(params) == 1, "the fixture notebook needs one cell tagged 'parameters'"
    lines = [f"RUN = {str(run)!r}" if line.startswith("RUN =") else line for line in params[0].source.splitlines()]
    params[0].source = "\n".join(lines)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "ilpnb (project venv)", "language": "python"}
    nbformat.write(nb, str(target))
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """``jupyter lab`` in a throwaway profile (use as a context manager).

    Args:
        home: An empty folder for the profile, the notebook root and the log.
        env: Extra environment for the server and its kernels.
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.root = home / "root"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.log_path = home / "jupyter-lab.log"
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(var, None)
        env.update({
            "JUPYTER_CONFIG_DIR": str(self.home / "config"), "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"), "IPYTHONDIR": str(self.home / "ipython"),
            "MPLCONFIGDIR": str(self.home / "mpl"), "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120.0) -> Lab:
        for sub in ("root", "config", "data", "runtime", "ipython", "mpl", "settings", "workspaces"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        for name, value in LAB_SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        venv_kernelspec(self.home / "data", self.extra_env)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}", "--ServerApp.open_browser=False",
               f"--ServerApp.root_dir={self.root}", f"--LabApp.user_settings_dir={self.home / 'settings'}",
               f"--LabApp.workspaces_dir={self.home / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run tests as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env(),
                                     cwd=str(self.root), start_new_session=True)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                req = urllib.request.Request(f"{self.url}/api/status", headers={"Authorization": f"token {self.token}"})
                with opener.open(req, timeout=5) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _api(self, path: str, method: str = "GET") -> object:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with opener.open(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:  # shut the kernels down through the server first (they run in their own sessions)
                for kernel in self._api("/api/kernels") or []:
                    self._api(f"/api/kernels/{kernel['id']}", method="DELETE")
            except (OSError, ValueError, KeyError, TypeError):
                pass
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
