"""The "Domain sync" page in the Airflow UI: a FastAPI app served by the api-server under /domain-sync/, shown
in the UI's navigation as an external view. Signed-in users only (the UI's session token).

The page is domain_sync.status rendered as HTML (`/domain-sync/`), and as JSON (`/domain-sync/status.json`).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse


def _signed_in():
    from airflow.api_fastapi.core_api.security import get_user

    return Depends(get_user)


app = FastAPI(title="Domain sync status", docs_url=None, redoc_url=None, openapi_url=None)


def _status() -> dict:
    from domain_sync.config import Settings
    from domain_sync.status import collect

    return collect(Settings.from_env())


@app.get("/", response_class=HTMLResponse, dependencies=[_signed_in()])
def status_page() -> str:
    from domain_sync.status import render_html

    return render_html(_status())


@app.get("/status.json", dependencies=[_signed_in()])
def status_json() -> JSONResponse:
    return JSONResponse(_status())


class DomainSyncStatusPlugin(AirflowPlugin):
    name = "domain_sync_status"
    fastapi_apps = [{"app": app, "url_prefix": "/domain-sync", "name": "Domain sync status"}]
    external_views = [{"name": "Domain sync", "href": "/domain-sync/", "destination": "nav",
                       "url_route": "domain-sync", "category": "browse"}]
