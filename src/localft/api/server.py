"""Running the app: `serve()` for `localft serve`, `EmbeddedServer` for tests and CLI commands.

`EmbeddedServer` binds a free loopback port itself and hands the socket to uvicorn, so there is no window in
which another process could take the port between choosing and binding it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from localft.api.app import create_app
from localft.api.auth import is_loopback
from localft.jobs.worker import DEFAULT_LEASE_SECONDS
from localft.settings import Settings

log = logging.getLogger(__name__)


def exposure_warning(settings: Settings) -> str | None:
    """The warning to print when the server would be reachable from other machines without API keys."""
    if is_loopback(settings.host) or settings.api_keys or settings.api_keys_file:
        return None
    return (
        f"WARNING: binding to {settings.host} without API keys: anyone who can reach this port can upload data, "
        "train and delete models. Set LOCALFT_API_KEYS=key1,key2 (or key1:project1,...) to require "
        "'Authorization: Bearer <key>'."
    )


def serve(settings: Settings, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, log_level: str = "info") -> None:
    """Run the server in the foreground until interrupted."""
    app = create_app(settings, lease_seconds=lease_seconds)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)


class EmbeddedServer:
    """The full server (API, database, embedded worker) on a free loopback port in a background thread.

    >>> with EmbeddedServer(Settings.from_env()) as server:   # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="local")
    """

    def __init__(
        self, settings: Settings, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, startup_timeout: float = 30.0
    ) -> None:
        self.settings = settings
        self.lease_seconds = lease_seconds
        self.startup_timeout = startup_timeout
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app: FastAPI | None = None
        """The running application (tests reach its services through `app.state`)."""

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("EmbeddedServer is not started")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the openai SDK as `base_url` (`http://127.0.0.1:PORT/v1`)."""
        return f"{self.root_url}/v1"

    def start(self) -> EmbeddedServer:
        app = self.app = create_app(self.settings, lease_seconds=self.lease_seconds)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="localft-embedded-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the embedded localft server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
