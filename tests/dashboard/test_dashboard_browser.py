"""The dashboard in a real browser: headless Chromium (Debian's, installed by the Makefile)
driven by Playwright against the API served by uvicorn on the API test stack.

A synthetic dispute is played to its ruling on the stack's chain (the same players as
tests/api/test_disputes_view.py) and its solver reports signed progress; then each view
must load with no console error and no request leaving the machine, draw what it shows
(the loss curve, the bisection), and leave a screenshot under test-artifacts/dashboard/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from frontend_api.orders import sign_progress
from tests.fixtures.api import ApiStack, Played, ServedApi, play_synthetic_dispute

CHROMIUM = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ASSAY_TEST_ARTIFACTS", "test-artifacts")) / "dashboard"
LOSSES = [2.31, 1.87, 1.42, 1.05]


def report(stack: ApiStack, job_id: int, solver: Any, step: int, loss: float) -> Any:
    body: dict[str, Any] = {
        "solver": solver.address,
        "step": step,
        "total_steps": 32,
        "loss": loss,
        "rate": 120.5,
        "unit": "samples/s",
        "eta_s": float(32 - step),
        "timestamp": int(time.time()),
    }
    chain = stack.api.chain()
    body["signature"] = sign_progress(solver, chain["chain_id"], chain["market"], job_id, body)
    return stack.http.post(f"/jobs/{job_id}/progress", json=body)


@pytest.fixture(scope="module")
def played(stack_module: ApiStack) -> Played:
    game = play_synthetic_dispute(stack_module, "browser")
    for i, loss in enumerate(LOSSES):
        response = report(stack_module, game.job_id, game.solver, 8 * i + 1, loss)
        assert response.status_code == 200, response.text
    return game


@pytest.fixture(scope="module")
def stack_module(api_stack: ApiStack) -> ApiStack:
    return api_stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    page: Page
    errors: list[str]
    outside: list[str]


@pytest.fixture
def page(browser: Browser, api_server: ServedApi) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    watched = Watched(tab, [], [])
    tab.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: watched.errors.append(str(e)))
    local = urlparse(api_server.url).netloc

    def only_local(route: Route) -> None:
        if urlparse(route.request.url).netloc == local:
            route.continue_()
        else:
            watched.outside.append(route.request.url)
            route.abort()

    tab.route("**/*", only_local)
    try:
        yield watched
    finally:
        context.close()


def _open(w: Watched, url: str, hash_: str, shot: str) -> Page:
    w.page.goto(url)
    w.page.wait_for_selector(f'body[data-rendered="{hash_}"]', timeout=15_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w.page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    assert w.errors == [], w.errors
    assert w.outside == [], w.outside
    return w.page


def test_dashboard_jobs_view_lists_the_job_with_terms(
    page: Watched, api_server: ServedApi, played: Played
) -> None:
    tab = _open(page, api_server.url + "/#/", "/", "jobs.png")
    row = tab.locator(f'tr.job-row[data-job="{played.job_id}"]')
    assert row.count() == 1
    text = row.inner_text()
    assert "Slashed" in text and "10.0000 WORK" in text and "25/32" in text


def test_dashboard_job_view_draws_the_reported_loss_curve(
    page: Watched, api_server: ServedApi, played: Played
) -> None:
    tab = _open(
        page, f"{api_server.url}/#/jobs/{played.job_id}", f"/jobs/{played.job_id}", "job.png"
    )
    d = tab.locator("svg.loss-curve path.curve").get_attribute("d") or ""
    assert d.count("L") == len(LOSSES) - 1
    ys = [float(p.split(",")[1]) for p in d.replace("M", "L").split("L")[1:]]
    assert ys == sorted(ys)  # falling loss: larger y (lower on screen) step after step
    progress = tab.locator("#progress").inner_text()
    assert "step 25 of 32" in progress and "samples/s" in progress


def test_dashboard_dispute_view_draws_the_bisection_and_payout(
    page: Watched, api_server: ServedApi, played: Played
) -> None:
    tab = _open(
        page,
        f"{api_server.url}/#/disputes/{played.game_id}",
        f"/disputes/{played.game_id}",
        "dispute.png",
    )
    assert tab.locator("#game-status").inner_text() == "ChallengerWon"
    picks = tab.locator("svg.bisection rect.pick").count()
    game = httpx.get(f"{api_server.url}/disputes/{played.game_id}").json()
    assert picks == sum(1 for m in game["moves"] if m["name"] == "Selected") > 0
    drawn = " ".join(tab.locator("svg.bisection text").all_text_contents())
    assert "CHECKPOINT level" in drawn and "OP level" in drawn
    assert f"step {game['interval']['base']}" in drawn
    assert "solver slashed" in tab.locator("#payouts").inner_text()
    # The committee's ruling card: one row per vote, with the arbiter and its hash.
    ruling = game["ruling"]
    assert ruling is not None and ruling["phase"] == "Settled" and ruling["votes"]
    rows = tab.locator("#votes tr.vote")
    assert rows.count() == len(ruling["votes"])
    for i, vote in enumerate(ruling["votes"]):
        text = rows.nth(i).inner_text()
        assert vote["arbiter"] in text and vote["computed_hash"] in text
    assert tab.locator("#computed-hash").inner_text() == ruling["computed_hash"]
    assert tab.locator("#ruling-phase").inner_text() == "Settled"
    assert "committee ruled solver wrong" in tab.locator("#ruling").inner_text()


def test_dashboard_solvers_view_shows_the_solver(
    page: Watched, api_server: ServedApi, played: Played
) -> None:
    tab = _open(page, api_server.url + "/#/solvers", "/solvers", "solvers.png")
    text = tab.locator("#solvers").inner_text()
    assert played.solver.address in text
    solver = httpx.get(f"{api_server.url}/solvers/{played.solver.address}").json()
    assert solver["balance"] is not None and solver["slashed"] >= 0
    shown = int(solver["balance"]) // 10**18
    assert f"{shown}." in text  # its WORK balance, read from the chain


def test_docs_render_offline_from_packaged_swagger(page: Watched, api_server: ServedApi) -> None:
    page.page.goto(api_server.url + "/docs")
    page.page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "docs.png"))
    assert "Assay API" in page.page.locator(".swagger-ui .info .title").inner_text()
    assert page.outside == [] and page.errors == []
