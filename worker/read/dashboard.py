"""The dashboard: one HTML page and its assets, served by metrics-api from the package itself.

Nothing is fetched from elsewhere and nothing is built: ``static/`` holds the page's script and
style and a vendored uPlot (MIT, its licence next to it). The page reads the /v1 API from the
browser, so it sees exactly what the API serves, behind the same tokens. Its pages are paths
(``/``, ``/sessions``, ``/sessions/{id}``, ``/forwards``, ``/pipeline``, ``/alerts``) with the filters in the
query string; the server answers each with the same page, which draws the one asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC = Path(__file__).resolve().parent / "static"
PAGES = ("/", "/sessions", "/sessions/{session_id:path}", "/forwards", "/pipeline", "/alerts")

router = APIRouter(include_in_schema=False)


@cache
def _page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def page(request: Request) -> HTMLResponse:
    """The page; it says whether the API wants a token, so it can ask for one before any read."""
    auth = "required" if request.app.state.token_check.enabled else "open"
    return HTMLResponse(
        _page().replace("{{auth}}", auth),
        headers={
            "Cache-Control": "no-cache",
            # Everything comes from this origin; uPlot sets inline styles on its elements.
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


for _path in PAGES:
    router.add_api_route(_path, page, methods=["GET"], response_class=HTMLResponse)


#: /docs and /redoc (fastapi-offline's pages, with their inline scripts) may load images, fonts
#: and data from this origin only: ReDoc's footer asks its vendor's CDN for a logo whatever its
#: options, which would tell that host who reads these docs, and when.
DOCS_POLICY = "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"


async def _docs_policy(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    if request.url.path in ("/docs", "/redoc"):
        response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and its assets (under /assets) on ``app``; keep the API's doc
    pages to this origin."""
    app.include_router(router)
    app.mount("/assets", StaticFiles(directory=STATIC), name="dashboard-assets")
    app.middleware("http")(_docs_policy)
