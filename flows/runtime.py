"""Where flows report to: the configured Prefect API, or ONE ephemeral server for this process and its workers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@contextlib.contextmanager
def prefect_api(quiet: bool = True) -> Iterator[str]:
    """Yield the API URL; start a temporary local server when none is configured.

    Spawned worker processes inherit PREFECT_API_URL, so they all talk to the
    same server instead of each starting its own on the same SQLite file.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if quiet:
        for name in ("prefect", "httpx", "uvicorn"):
            logging.getLogger(name).setLevel(logging.WARNING)
    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
