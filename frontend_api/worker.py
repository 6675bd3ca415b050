"""The Celery worker's entry point: `celery -A frontend_api.worker worker -Q assay`.

Builds the app from the process's `Settings` (ASSAY_* variables) with the task bodies of
frontend_api.tasks registered.  Tests build their own with `tasks.build_worker_app`.
This module must never be imported by the API.
"""

from __future__ import annotations

from frontend_api.settings import Settings
from frontend_api.tasks import build_worker_app

app = build_worker_app(Settings())
