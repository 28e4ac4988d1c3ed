"""/docs (Swagger UI) and /redoc (ReDoc), served entirely by the API: they work offline.

FastAPI's default pages load Swagger UI and ReDoc from a CDN and stay blank without internet.
Here the JavaScript, CSS and favicon come from the ``fastapi-offline`` package installed with the
kit, and the API serves them itself, as FastAPI's how-to "Custom Docs UI Static Assets
(Self-Hosting)" describes. Build the app with ``docs_url=None, redoc_url=None``, then call
``serve_docs(app)``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Where the API serves swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png.
ASSETS_URL = "/docs-assets"


def serve_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the docs' assets on the app and add the Swagger UI and ReDoc pages that use them."""
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that serves the API at a prefix
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # the fonts are another CDN; ReDoc falls back to local ones
        )
        # ReDoc's sidebar credit loads Redocly's logo from their CDN (offline it fails and hides
        # itself): images from this server only, so the browser does not even try.
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page
