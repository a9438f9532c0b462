"""`create_app(settings)`: the FastAPI application, its services on `app.state`, and the embedded worker.

Routes live under `/v1` (guarded by API keys when configured, each key seeing its project), plus `/health`,
`/version` and the dashboard at `/` when `localft.web` is installed. The embedded worker, when enabled, runs jobs
in a thread for the app's lifetime and hands a running job back to the queue on shutdown, so it resumes on the next
start; with `executor="ray"` that thread hands each queued job to a Ray cluster instead (`localft.jobs.ray_executor`).
Creating the app marks the data folder as the database's (`jobs.data_folder`), or refuses to when the database
belongs to another folder.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from localft import __version__
from localft.api import errors, health, openapi
from localft.api.auth import ApiKeys, KeyTable
from localft.api.chat.router import router as chat_router
from localft.api.chat.service import ChatService
from localft.api.files.router import router as files_router
from localft.api.files.service import FileService
from localft.api.fine_tuning.router import router as fine_tuning_router
from localft.api.fine_tuning.service import FineTuningService
from localft.api.limits import NoNulInUrl, UploadLimit
from localft.api.models.router import router as models_router
from localft.api.models.service import ModelService
from localft.api.workers import router as workers_router
from localft.base_models import use_auto_pull, use_threads
from localft.devices import describe
from localft.jobs.data_folder import mark_data_folder
from localft.jobs.files import FileStorage
from localft.jobs.store import Store
from localft.jobs.worker import DEFAULT_LEASE_SECONDS, Worker
from localft.settings import Settings

if TYPE_CHECKING:
    from localft.inference.engine import InferenceEngine
    from localft.jobs.ray_executor import RayExecutor

log = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT = 900.0
"""How long shutdown waits for the embedded worker to reach a step boundary and re-queue its job. Generous: leaving
earlier would abandon a thread inside torch, and the process would abort at exit (the job itself survives either
way: its lease runs out and it resumes from its last checkpoint)."""


class _EngineHolder:
    """Builds the inference engine on first use; torch is imported only when a model is asked to answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: InferenceEngine | None = None
        self._lock = threading.Lock()

    def get(self) -> InferenceEngine:
        with self._lock:
            if self._engine is None:
                from localft.inference.engine import InferenceEngine

                self._engine = InferenceEngine(
                    self.settings.cache_dir, device=self.settings.device, int8=self.settings.int8
                )
            return self._engine

    def evict(self, checkpoint_dir: Path) -> None:
        if self._engine is not None:
            self._engine.evict(checkpoint_dir)


def create_app(settings: Settings, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> FastAPI:
    """The application for `settings`; opens (and migrates) the database now. Raises ValueError for a bad key
    configuration, DataFolderMismatch when the database belongs to another data folder, and
    `localft.devices.DeviceError` for a device that is not there (`LOCALFT_DEVICE=cuda` on a CPU build of torch),
    before anything starts."""
    compute = describe(settings.device)
    keys = KeyTable.from_settings(settings)
    settings.ensure_dirs()
    use_threads(settings.threads)
    use_auto_pull(settings.auto_pull)
    store = Store.open(settings.db_url)
    try:
        mark_data_folder(store, settings.home)
    except Exception:
        store.close()
        raise
    storage = FileStorage(store, settings.files_dir)
    engine = _EngineHolder(settings)
    worker: Worker | RayExecutor | None = None
    if settings.executor == "ray":
        from localft.jobs.ray_executor import RayExecutor

        worker = RayExecutor(settings, store, lease_seconds=lease_seconds)
    elif settings.embedded_worker:
        worker = Worker(settings, store, lease_seconds=lease_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if worker is not None:
            thread = threading.Thread(target=worker.run_forever, name=f"localft-{settings.executor}", daemon=True)
            thread.start()
        else:
            # No worker here to pick them up: finish validations a crash interrupted.
            Worker(settings, store).recover()
        try:
            yield
        finally:
            if worker is not None and thread is not None:
                worker.stop()
                thread.join(1.0)
                if thread.is_alive():
                    log.info("waiting for the running job to reach a step boundary before shutting down")
                    thread.join(WORKER_STOP_TIMEOUT)
            store.close()

    app = FastAPI(
        title="localft",
        version=__version__,
        description="OpenAI-compatible fine-tuning and chat completions for local open-weight models.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.worker = worker
    app.state.compute = compute
    app.state.engine = engine
    app.state.files = FileService(storage, settings.max_upload_bytes)
    app.state.fine_tuning = FineTuningService(store, storage, settings.organization, settings.jobs_dir)
    app.state.models = ModelService(store, settings.home, settings.jobs_dir, engine.evict, settings.cache_dir)
    app.state.chat = ChatService(store, settings.home, engine.get)
    errors.install(app)
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(ApiKeys, keys=keys)  # outermost: no key, no work done for the request

    v1 = APIRouter(prefix="/v1")
    for router in (files_router, fine_tuning_router, models_router, chat_router, workers_router):
        v1.include_router(router)
    app.include_router(v1)
    app.include_router(health.router)
    _mount_dashboard(app)
    openapi.install(app)
    return app


def _mount_dashboard(app: FastAPI) -> None:
    try:
        web = importlib.import_module("localft.web.router")
    except ModuleNotFoundError as exc:
        if exc.name != "localft.web.router":
            raise
        return
    app.include_router(web.router)
