"""End-to-end fixtures: headless Chromium (the system's, never a downloaded one) and a
live server whose runs are not sent to a broker, so each test advances them itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API leaves an event loop marked running in this thread from here to
    # the end of the session; Django refuses database access from such a thread unless told
    # it is safe (it is: the loop is Playwright's). Set only from the first browser test on
    # (they run last, pyproject's testpaths): set at import, it would also switch off the
    # check that an async step calling the ORM straight from its coroutine fails.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page. Every test also proves that the pages it visits keep to the Content
    Security Policy: anything the browser refused to run or apply fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(f"{page.url}: {message.text}")
        if "Content Security Policy" in message.text else None,
    )
    yield page
    context.close()
    assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """Process ids the live server would have sent to a worker (none runs in these tests)."""
    from orchestrator import services

    sent: list[str] = []
    monkeypatch.setattr(
        services, "enqueue_processes",
        lambda processes, countdown=None: sent.extend(str(process.pk) for process in processes),
    )
    return sent
