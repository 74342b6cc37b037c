"""Assembling the FastAPI application over one store (OpenAPI at ``/docs``).

``/docs`` is Swagger UI from the vendored files in ``api/static/swagger-ui/`` (no CDN: it
works offline); ``/openapi.json`` is the schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from didban import __version__
from didban.api import answers, collector, contract, data, events, feeds
from didban.api.filters import NotFound
from didban.store.committer import Committer
from didban.store.store import Store

DEFAULT_MAX_BODY = 4 * 1024 * 1024
SWAGGER_DIR = Path(__file__).parent / "static" / "swagger-ui"
SWAGGER_PATH = "/static/swagger-ui"


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
        docs_url=None,  # served below from vendored files instead of a CDN
        redoc_url=None,  # ReDoc would need a CDN
    )
    app.mount(SWAGGER_PATH, StaticFiles(directory=SWAGGER_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        prefix = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{prefix}{app.openapi_url}",
            title=f"{app.title} — docs",
            swagger_js_url=f"{prefix}{SWAGGER_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}{SWAGGER_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{prefix}{SWAGGER_PATH}/favicon-32x32.png",
        )

    app.state.store = store
    app.state.committer = committer

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """400 with one sentence, the first problem with the request; 404 when the path
        names something that does not exist."""
        errors = exc.errors()
        for e in errors:
            if isinstance(e.get("ctx", {}).get("error"), NotFound):
                return JSONResponse({"detail": str(e["ctx"]["error"])}, status_code=404)
        first = errors[0] if errors else {}
        error = first.get("ctx", {}).get("error")
        if first.get("type") == "value_error" and error is not None:
            # api.filters' validators: the sentence already names the parameter
            return JSONResponse({"detail": str(error)}, status_code=400)
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path"))
        msg = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        return JSONResponse({"detail": msg}, status_code=400)

    @app.get("/", tags=["meta"], summary="Service description", response_model=answers.ServiceInfo)
    async def root() -> dict[str, Any]:
        return {"service": "didban", "version": __version__, "docs": "/docs"}

    app.include_router(collector.router(committer, max_body))
    app.include_router(data.router(store))
    app.include_router(events.router(store.dir))
    app.include_router(feeds.router(store.dir))
    contract.install(app)
    return app
