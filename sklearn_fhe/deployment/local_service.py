"""``LocalService``: ``sklearn-fhe serve`` in a child process on 127.0.0.1 and a free port.

For tests, examples and benchmarks that query a real server over HTTP on this machine only.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence, Union

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LocalService:
    """A served model in a child process; a context manager that waits for ``/health``.

    Parameters
    ----------
    model_dir : str or pathlib.Path
        A saved model (both parts).
    options : sequence of str
        More ``sklearn-fhe serve`` options, e.g. ``["--max-request-bytes", "65536"]``.
    startup_timeout : float, default=300
        Seconds to wait for the server to answer ``/health``.
    token : str, optional
        A bearer token for :meth:`health` (a service with ``--token-file``).
    ca_file : str or pathlib.Path, optional
        The CA to verify an HTTPS service with (``--ssl-certfile`` among ``options``).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT`` (``https://`` with ``--ssl-certfile``).
    model_dir : pathlib.Path
        The model served.
    process : subprocess.Popen
        The server process (its ``pid`` for memory figures).
    """

    def __init__(self, model_dir: Union[str, Path], options: Sequence[str] = (),
                 startup_timeout: float = 300.0, token: Optional[str] = None,
                 ca_file: Optional[Union[str, Path]] = None) -> None:
        self.model_dir = Path(model_dir)
        self.port = free_port()
        scheme = "https" if "--ssl-certfile" in options else "http"
        self.url = f"{scheme}://{HOST}:{self.port}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sklearn_fhe", "serve", str(model_dir), "--host", HOST,
             "--port", str(self.port), "--log-level", "warning", *options],
            stdout=subprocess.DEVNULL, stderr=self._log)
        try:
            self._wait(startup_timeout)
        except BaseException:
            self.close()
            raise

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        """``GET path``'s body (with the token, if any)."""
        request = urllib.request.Request(self.url + path, headers=self._headers)
        context = self._tls if self.url.startswith("https:") else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.read()

    def health(self, timeout: float = 10.0) -> dict:
        """``GET /health``'s JSON."""
        return json.loads(self.get("/health", timeout))

    def kill(self) -> None:
        """Kill the server at once (SIGKILL: no clean-up, as a crash)."""
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        """What the server wrote to its standard error so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited at start:\n{self.log()[-3000:]}")
            try:
                self.health(timeout=2.0)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise TimeoutError(f"The server did not answer {self.url}/health in {timeout} s.")

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 30 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> "LocalService":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
