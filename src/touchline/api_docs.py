"""The API reference at /docs: the vendored Swagger UI (static/vendor/swagger-ui), served from this server.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script, so it is blank
offline and refused by the Content-Security-Policy; this page loads the same UI from /static and starts
it with a static script that reads the OpenAPI URL from a data attribute.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from touchline.ui import templates

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html", {"openapi_url": request.app.openapi_url})
