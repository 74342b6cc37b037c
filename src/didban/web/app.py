"""The explorer's routes, added to the API's application (``didban serve`` serves both).

URL scheme (docs/explorer.md): every page at ``/PATH`` in the remembered language (a
cookie; English by default), at ``/fa/PATH`` in Farsi, and at ``/PATH.json``,
``/PATH.csv``, ``/PATH.parquet`` as data (the same view's data; ``?table=`` picks the
table of a CSV or Parquet download). ``?lang=fa|en`` switches and remembers the
language. A measurement uid contains a dot, so the extension is matched by a route
converter that accepts only the three formats.

``/`` stays the API's service description (JSON) for clients that do not ask for HTML;
a browser (``Accept: text/html``) gets the explorer's home page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from didban.api.app import DEFAULT_MAX_BODY
from didban.api.app import create_app as api_app
from didban.store import rollups
from didban.store.store import Store
from didban.web import evidence, glossary, views
from didban.web.i18n import LANGS, pick
from didban.web.pages import Page, PageError, Where
from didban.web.render import FORMATS, negotiate, render

STATIC: Final = Path(__file__).parent / "static"
STATIC_PATH: Final = "/static/explorer"
COOKIE: Final = "didban_lang"
ONE_YEAR: Final = 365 * 24 * 3600
REFRESH_S: Final = 300.0  # how often a serving store's stale rollup days are refreshed

View = Callable[..., Page]


class _Format(Convertor[str]):
    regex = "|".join(FORMATS)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fmt", _Format())


def _measurement(store: Store, where: Where, params: QueryParams, uid: str) -> Page:
    return evidence.measurement(store, where, uid)


# path, view, path parameters
PAGES: Final[tuple[tuple[str, View, tuple[str, ...]], ...]] = (
    ("/country/{cc}", views.country, ("cc",)),
    ("/service/{service_id}", views.service, ("service_id",)),
    ("/event/{event_id}", views.event, ("event_id",)),
    ("/m/{uid}", _measurement, ("uid",)),
    ("/timeline/{cc}", views.timeline, ("cc",)),
    ("/search", views.search, ()),
    ("/methods", glossary.page, ()),
)


def _error_page(error: PageError, where: Where) -> Page:
    return Page(
        "error.html.j2",
        where.lang.gettext("Not found") if error.status == 404 else where.lang.gettext("Error"),
        {"detail": error.sentence, "status": error.status},
        partial="_error.html.j2",  # what a filter's htmx request swaps in: no second page
        status=error.status,
    )


def _handler(store: Store, view: View, path: str, names: tuple[str, ...], prefix: str) -> Any:
    path_lang = prefix.strip("/") or None

    async def handle(request: Request) -> Response:
        values = {n: str(request.path_params[n]) for n in names}
        fmt = request.path_params.get("fmt")
        query_lang = request.query_params.get("lang")
        lang = pick(path_lang, query_lang, request.cookies.get(COOKIE))
        logical = path.format(**values)
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        base = str(request.base_url).rstrip("/")
        where = Where(lang, logical, query, base)
        fmt = negotiate(request, fmt)
        try:
            if query_lang and query_lang not in LANGS:
                raise PageError(400, f"lang must be {' or '.join(LANGS)}, not {query_lang!r}")
            page = await run_in_threadpool(view, store, where, request.query_params, **values)
            response = render(request, page, where, fmt)
        except PageError as exc:
            if fmt != "html":
                response = JSONResponse({"detail": exc.sentence}, exc.status)
            else:
                response = render(request, _error_page(exc, where), where, "html")
        if path_lang or query_lang in LANGS:
            response.set_cookie(COOKIE, lang.code, max_age=ONE_YEAR, samesite="lax")
        return response

    return handle


def _routes(store: Store) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for prefix in ("", *(f"/{code}" for code in LANGS if code != "en")):
        for path, view, names in PAGES:
            handle = _handler(store, view, path, names, prefix)
            routes.append(Route(f"{prefix}{path}.{{fmt:fmt}}", handle, methods=["GET"]))
            routes.append(Route(f"{prefix}{path}", handle, methods=["GET"]))
        home = _handler(store, views.home, "/", (), prefix)
        if prefix:
            routes.append(Route(prefix, home, methods=["GET"]))
            routes.append(Route(prefix + "/", home, methods=["GET"]))
        else:
            routes.append(Route("/index.{fmt:fmt}", home, methods=["GET"]))
    return routes


def install(app: FastAPI, store: Store) -> None:
    """Add the explorer's pages and static files to the API's ``app``."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="explorer-static")
    api_root = next(r for r in app.router.routes if isinstance(r, APIRoute) and r.path == "/")
    html_home = _handler(store, views.home, "/", (), "")

    async def root(request: Request) -> Response:
        """The explorer's home for a browser; the API's description for anything else."""
        if "text/html" in request.headers.get("accept", ""):
            response: Response = await html_home(request)
            return response
        return JSONResponse(await api_root.endpoint())

    routes = _routes(store)
    routes.append(Route("/", root, methods=["GET"]))
    app.router.routes[:0] = routes  # before the API's "/", which stays in the OpenAPI
    app.add_exception_handler(StarletteHTTPException, _not_found_page)


async def _not_found_page(request: Request, exc: Exception) -> Response:
    """A browser asking for a path nobody serves gets the explorer's 404 page, in its
    language; the API's clients (and every other error) keep FastAPI's JSON answer."""
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if (
        exc.status_code != 404
        or path.startswith("/api/")
        or "text/html" not in request.headers.get("accept", "")
    ):
        return await http_exception_handler(request, exc)
    path_lang = next((c for c in LANGS if c != "en" and path.startswith(f"/{c}/")), None)
    lang = pick(path_lang, request.query_params.get("lang"), request.cookies.get(COOKIE))
    where = Where(lang, "/", {}, str(request.base_url).rstrip("/"))
    error = PageError(404, f"there is no page at {path}")
    return render(request, _error_page(error, where), where, "html")


def create_app(
    store: Store, max_body: int = DEFAULT_MAX_BODY, refresh_every: float = REFRESH_S
) -> FastAPI:
    """The API and the explorer over ``store`` (what ``didban serve`` runs), with its
    rollups kept fresh while it serves (``store.rollups.Refresher``)."""
    app = api_app(store, max_body)
    install(app, store)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        refresher = rollups.Refresher(store, refresh_every)
        async with inner(a) as state:
            refresher.start()
            try:
                yield state
            finally:  # before the API's own shutdown closes the write queue
                await run_in_threadpool(refresher.stop)

    app.router.lifespan_context = lifespan
    return app
