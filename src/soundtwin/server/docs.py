"""``/docs`` without a network: Swagger UI's files served from the ``fastapi-offline`` package."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse


def offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's files served from the ``fastapi-offline`` package, not a CDN, so the
    page works with no network."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = files("fastapi_offline") / "static"
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="soundtwin API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")
