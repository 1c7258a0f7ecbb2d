"""Where flows report to: the configured Prefect API, or ONE ephemeral server for this process and its workers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

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
def prefect_api(quiet: bool = True) -> Iterator[str]:
    """Yield the API URL; start a temporary local server when none is configured.

    Spawned worker processes inherit PREFECT_API_URL, so they all talk to the
    same server instead of each starting its own on the same SQLite file.
    """
    from prefect.settings import PREFECT_API_URL

    if quiet:
        for name in ("prefect", "httpx", "uvicorn"):
            logging.getLogger(name).setLevel(logging.WARNING)
    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        yield url
        return
    server = _server_class()()
    server.start(timeout=120)
    try:
        with use_api(server.api_url) as url:
            yield url
    finally:
        server.stop()


def _server_class() -> type:
    """Prefect's temporary API server, started through `htr.lifeline` so it dies with this process.

    Same command as Prefect 3.9's `SubprocessASGIServer._run_uvicorn_command` (pinned version),
    prefixed by the launcher: a SIGKILLed `htr enrich` no longer leaves its server running.
    """
    import subprocess
    import sys

    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class ChildServer(SubprocessASGIServer):
        _instances: dict = {}  # not shared with Prefect's own servers

        def _run_uvicorn_command(self) -> subprocess.Popen:
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
            return subprocess.Popen(args=args, env=env)

    return ChildServer
