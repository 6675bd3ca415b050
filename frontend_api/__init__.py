"""Assay's REST API for submitters, its Celery tasks (pin, relay, await receipt) and settings.

The API validates, verifies signatures off-chain and enqueues work by task name; the
worker (`frontend_api.worker`) pins artifacts and relays signed orders with the relayer's
key.  Nothing here may import training code (torch, repops).
"""
