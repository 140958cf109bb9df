"""The media retention sweep: uploaded files named by nothing, older than
``media_retention_days``, deleted a bounded batch per run (services/media_files.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.services import media_files

SWEEP_BATCH = 500  # files per run: the next run takes the rest


class MediaActivities:
    def __init__(self, sessions: SessionFactory, settings: Settings):
        self._sessions = sessions
        self._settings = settings

    @activity.defn
    async def sweep_unused(self) -> int:
        """How many files it deleted."""
        before = datetime.now(UTC) - timedelta(days=self._settings.media_retention_days)
        async with transaction(self._sessions) as session:
            return await media_files.sweep_unused(session, before, SWEEP_BATCH)
