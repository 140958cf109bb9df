"""The agent inbox web UI: static files served at ``/app`` by the API process.

The front end is plain ES modules and CSS in ``static/`` (no build step, no Node.js); it talks only
to the public ``/api/v1`` routes and the ``/api/v1/stream`` SSE stream, like any other client.
Vendored third-party files live in ``static/vendor/<name>-<version>/`` with their licence.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount(app: FastAPI, path: str = "/app") -> None:
    """Serve the inbox at ``path`` (``/app`` redirects to ``/app/``, which serves index.html)."""
    app.mount(path, StaticFiles(directory=STATIC_DIR, html=True), name="app")
