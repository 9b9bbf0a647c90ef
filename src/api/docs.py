"""`/docs` (Swagger UI) and `/redoc`, served with their assets from this process.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on a machine
without internet (an air-gapped cluster, a developer on a train). The `fastapi-offline`
package ships the same assets (swagger-ui-dist 5, which reads OpenAPI 3.1, and ReDoc's
standalone bundle); they are mounted here and FastAPI's page templates point at them.
"""

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"


def assets_directory() -> Path:
    """Where the installed Swagger UI and ReDoc files are."""
    directory = Path(str(resources.files("fastapi_offline") / "static"))
    assert (directory / "swagger-ui-bundle.js").is_file(), directory
    return directory


def install_docs(app: FastAPI) -> None:
    """Serve the API reference pages; `FastAPI(docs_url=None, redoc_url=None)` must have
    turned off FastAPI's CDN-backed ones."""
    assert app.docs_url is None, "FastAPI's /docs loads its assets from a CDN"
    assert app.redoc_url is None, "FastAPI's /redoc loads its assets from a CDN"
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,  # API keys only: no OAuth2 flow to come back from
            # The Authorize button's key survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
