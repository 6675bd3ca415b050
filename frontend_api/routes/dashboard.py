"""The dashboard at / and the offline API docs at /docs, both from files in the package.

The dashboard is one HTML page and a small script that reads the same JSON endpoints any
client reads and draws with SVG; nothing is fetched from outside the API.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from frontend_api.vendor import STATIC_DIR

router = APIRouter(include_in_schema=False)

SWAGGER_URL = "/static/vendor/swagger-ui"


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Assay API",
        swagger_js_url=f"{SWAGGER_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_URL}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_URL}/favicon-32x32.png",
    )
