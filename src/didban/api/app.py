"""Assembling the FastAPI application over one store (OpenAPI at ``/docs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from didban import __version__
from didban.api import collector, data
from didban.api.params import BadParam
from didban.store.committer import Committer
from didban.store.store import Store

DEFAULT_MAX_BODY = 4 * 1024 * 1024


def create_app(store: Store, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The didban API over ``store``; closing the app drains the write queue."""
    committer = Committer(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        committer.close()

    app = FastAPI(
        title="didban API",
        version=__version__,
        description="OONI-compatible collector, measurements, aggregation, services and "
        "exports of the didban censorship observatory.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.committer = committer

    @app.exception_handler(BadParam)
    async def bad_param(_: Request, exc: BadParam) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path"))
        msg = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        return JSONResponse({"detail": msg}, status_code=400)

    @app.get("/", tags=["meta"], summary="Service description")
    async def root() -> dict[str, Any]:
        return {"service": "didban", "version": __version__, "docs": "/docs"}

    app.include_router(collector.router(committer, max_body))
    app.include_router(data.router(store))
    return app
