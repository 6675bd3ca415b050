"""Schemathesis over the served OpenAPI schema: no request it can generate gets a 5xx.

Schemathesis' pytest plugin does not load under pytest 9, so each operation's Hypothesis
strategy is driven here directly (same generation, same schema).
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fixtures.api import ServedApi

EXAMPLES_PER_OPERATION = 40


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_openapi_any_generated_request_gets_no_server_error(api_server: ServedApi) -> None:
    operations = _operations(api_server.url)
    assert len(operations) >= 9
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call(base_url=api_server.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )
            elif response.status_code >= 400:
                assert isinstance(response.json().get("detail"), str), response.text

        fuzz()
    assert failures == []


def test_openapi_schema_documents_post_jobs_examples(api_server: ServedApi) -> None:
    doc = httpx.get(f"{api_server.url}/openapi.json").json()
    body = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert body["application/json"]["example"]["spec"]["repops_version"] == "repops-2"
    assert "JobSubmission" in doc["components"]["schemas"]
    assert {"/jobs/{job_id}", "/disputes/{game_id}", "/solvers/{address}", "/health"} <= set(
        doc["paths"]
    )
