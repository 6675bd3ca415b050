"""Drive on submissions nobody is working on: a worker killed mid-task, a broker outage.

Every Celery task of a submission is idempotent and keyed by the row's state, so sending
the whole pin -> relay -> await-receipt flow again for a row that has not moved for
`stuck_after_s` is always safe: the steps already done return at once, and the relay
step's lock and stored raw transaction mean nothing is signed or posted twice.  A row
whose order can no longer be posted (deadline passed, nonce used) is failed by those
same steps, with a reason, which frees its nonce for the submitter's later orders.

The sweeper runs as a daemon thread in the API process (`Sweeper.start`), which owns the
rows and only enqueues by task name; `sweep_once` is the unit the tests drive.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from frontend_api.celery_app import enqueue_submission
from frontend_api.db import ACTIVE_STATES, SubmissionRow
from frontend_api.settings import Settings

log = logging.getLogger(__name__)


def sweep_once(
    sessions: sessionmaker[Session], celery: Celery, settings: Settings, now: float | None = None
) -> list[str]:
    """Re-enqueue every active submission untouched for `stuck_after_s`; their ids."""
    cutoff = (time.time() if now is None else now) - settings.stuck_after_s
    with sessions() as session:
        ids = list(
            session.scalars(
                select(SubmissionRow.id).where(
                    SubmissionRow.state.in_([s.value for s in ACTIVE_STATES]),
                    SubmissionRow.updated_at < cutoff,
                )
            )
        )
    driven = []
    for submission_id in ids:
        try:
            task_id = enqueue_submission(celery, submission_id, settings.task_queue)
        except Exception as exc:  # the broker is still down: try again next sweep
            log.warning("sweeper: cannot enqueue %s yet: %s", submission_id, exc)
            break
        with sessions.begin() as session:
            row = session.get(SubmissionRow, submission_id)
            if row is not None:
                row.task_id = task_id
                row.updated_at = time.time()
                if row.error and row.error.startswith("queued:"):
                    row.error = None
        driven.append(submission_id)
        log.info("sweeper: drove on stuck submission %s", submission_id)
    return driven


class Sweeper:
    """`sweep_once` every `sweep_interval_s` on a daemon thread until `stop`."""

    def __init__(self, sessions: sessionmaker[Session], celery: Celery, settings: Settings) -> None:
        self.sessions = sessions
        self.celery = celery
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.sweep_interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                sweep_once(self.sessions, self.celery, self.settings)
            except Exception:  # a failed sweep (database busy) must not end the thread
                log.exception("sweeper: sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
