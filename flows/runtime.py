"""Where flows report to: the configured Prefect API, or ONE ephemeral server for this process and its workers."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@contextlib.contextmanager
def use_api(url: str) -> Iterator[str]:
    """Point this process (context AND process-global settings) and the workers it spawns at `url`.

    Prefect's background clients (events, logs) read the process-global settings, not the
    context: without the refresh they could start a server of their own on the SQLite file.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        refresh_global_settings_context()


@contextlib.contextmanager
def prefect_api(quiet: bool = True, meanwhile: Callable[[], object] | None = None) -> Iterator[str]:
    """Yield the API URL; start a temporary local server when none is configured.

    Spawned worker processes inherit PREFECT_API_URL, so they all talk to the
    same server instead of each starting its own on the same SQLite file.
    `meanwhile` (e.g. starting the worker pool) runs once the URL is set, before the server
    is started and waited for: what it spawns inherits the URL and starts alongside the server.
    """
    from prefect.settings import PREFECT_API_URL

    if quiet:
        for name in ("prefect", "httpx", "uvicorn"):
            logging.getLogger(name).setLevel(logging.WARNING)
    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        if meanwhile is not None:
            meanwhile()
        yield url
        return
    port = _free_port()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(use_api(f"http://127.0.0.1:{port}/api"))  # the server's, once started
        if meanwhile is not None:
            meanwhile()
        server = _Server(port)
        stack.callback(server.stop)
        server.start(timeout=120)
        if server.api_url != url:  # the port was taken meanwhile: Prefect's server moved to another
            url = stack.enter_context(use_api(server.api_url))
        yield url


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now, from Prefect's range for its temporary server (8000-8999: below
    the ports the system hands out to outgoing connections); Prefect moves on if it is taken by then."""
    for port in random.sample(range(8000, 9000), 20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """Prefect's temporary API server in a child process started through `htr.lifeline`, so that it dies
    with this process: a SIGKILLed `htr enrich` no longer leaves its server running.

    The child runs the command of Prefect 3.9's `SubprocessASGIServer` (pinned version), with the same
    environment, and is started, awaited (GET /health) and stopped the same way. It is not a subclass:
    importing Prefect's server module costs this process seconds of CPU, while the workers start, for a
    class whose server runs in the child anyway.
    """

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> subprocess.Popen:
        import prefect
        from prefect.settings import get_current_settings

        args = [
            sys.executable,
            "-m",
            "htr.lifeline",
            str(os.getpid()),
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        env.pop("PREFECT_API_URL", None)  # the server's own environment, as when it started before the URL was set
        return subprocess.Popen(args=args, env=env)

    def start(self, timeout: float) -> None:
        """Start the server and wait until it answers; RuntimeError if it does not within `timeout` seconds."""
        import httpx

        self.process = self._launch()
        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code == 3:  # uvicorn could not bind: the port was taken meanwhile, as Prefect does: another
                    self.port = _free_port()
                    self.process = self._launch()
                    continue
                if code is not None:
                    raise RuntimeError(f"the temporary Prefect API server exited with code {code} while starting")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:  # not listening yet
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout:.0f} s while starting the temporary Prefect API server")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
