"""The Celery application, the task names, and how the API enqueues a submission.

The API and the worker build the same app from `Settings`; only the worker registers
task bodies (`frontend_api.tasks`).  The API refers to tasks by the NAME constants below,
so it never imports the code that holds the relayer key.  Every task is `acks_late`
(a worker that dies mid-task leaves the message to be redelivered) and idempotent (each
reads and advances one `SubmissionRow`, so running it twice does the work once).
"""

from __future__ import annotations

from typing import Final

from celery import Celery, chain, signature

from frontend_api.settings import Settings

PIN_SUBMISSION: Final = "assay.pin_submission"
"""Pin a submission's spec and dataset in the artifact store."""
RELAY_SUBMISSION: Final = "assay.relay_submission"
"""Sign and broadcast JobMarket.postJobFor with the relayer's key."""
AWAIT_RECEIPT: Final = "assay.await_receipt"
"""Wait for the relayed transaction's receipt and record the job id."""

TASK_NAMES: Final = (PIN_SUBMISSION, RELAY_SUBMISSION, AWAIT_RECEIPT)


def make_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.redis_url` with Assay's reliability settings."""
    app = Celery("assay", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.task_queue,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        # Redis redelivers unacked messages after this; it must exceed the longest task
        # (a large dataset pin), or a running task would be handed to a second worker.
        # It no longer bounds recovery from a killed worker: the API's sweeper re-enqueues
        # a submission untouched for ASSAY_STUCK_AFTER_S (60 s), and the late redelivery
        # of the dead worker's message is absorbed by the tasks' idempotency.  So it stays
        # long rather than being lowered toward the sweep's timescale.
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
    )
    return app


def enqueue_submission(app: Celery, submission_id: str, queue: str) -> str:
    """Send pin -> relay -> await-receipt for one submission; returns the chain's task id."""
    flow = chain(
        signature(PIN_SUBMISSION, args=(submission_id,), immutable=True, queue=queue, app=app),
        signature(RELAY_SUBMISSION, args=(submission_id,), immutable=True, queue=queue, app=app),
        signature(AWAIT_RECEIPT, args=(submission_id,), immutable=True, queue=queue, app=app),
    )
    # The API never reads task results: subscribing to them would only hold a Redis
    # connection that outlives the request (and retries noisily once Redis is gone).
    result = flow.apply_async(ignore_result=True)
    return str(result.id)
