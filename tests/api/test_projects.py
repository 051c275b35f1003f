"""Health and projects: what the Langfuse SDK's auth check needs."""

from __future__ import annotations

import httpx


def test_health_needs_no_credentials(api):
    response = httpx.get(f"{api.base}/api/public/health")
    assert response.status_code == 200
    assert response.json()["status"] == "OK"
    assert response.json()["version"]


def test_projects_returns_the_callers_project(api, other_api):
    assert api.get("/api/public/projects").json()["data"][0]["id"] == "default"
    body = other_api.get("/api/public/projects").json()
    assert body["data"] == [
        {"id": "other", "name": "Other", "organization": {"id": "spanfuse", "name": "Spanfuse"}, "metadata": {}}
    ]


def test_projects_refuses_bad_credentials(api):
    response = httpx.get(f"{api.base}/api/public/projects", auth=("pk-lf-test", "wrong"))
    assert response.status_code == 401
    assert "Invalid credentials" in response.json()["message"]
    assert httpx.get(f"{api.base}/api/public/projects").status_code == 401


def test_openapi_page_lists_the_public_api(api):
    schema = httpx.get(f"{api.base}/openapi.json").json()
    assert "/api/public/projects" in schema["paths"]
    assert httpx.get(f"{api.base}/docs").status_code == 200
