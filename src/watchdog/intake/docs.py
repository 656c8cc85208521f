"""The API's documentation pages, /docs (Swagger UI) and /redoc, with their files from the package.

I/O: serves files from ``watchdog/static/docs/`` (vendored from npm, see its README.md). FastAPI's
own pages load Swagger UI and ReDoc from a CDN, which a municipal network may block; these load
nothing from outside (no Google fonts either).
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "static" / "docs"
ASSETS_URL = "/docs-assets"


def mount_docs(app) -> None:
    """Add /docs, /docs/oauth2-redirect, /redoc and the assets they use to a FastAPI app."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    title = app.title
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def swagger_ui():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{title} – Swagger UI",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                                   oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False, response_class=HTMLResponse)
    def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False, response_class=HTMLResponse)
    def redoc():
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{title} – ReDoc",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)
