"""The dashboard in real headless Chromium (Debian's, driven by Playwright): where the browser is, a page
watched for console errors, the owner's session cookie, axe-core's serious findings, where screenshots go.

A test that needs Chromium fails when it is missing, saying how to install it: the test command never skips
the browser tests silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from .daemon import DaemonHandle
from .system import REPO

__all__ = ["AXE", "Watched", "chromium", "login_cookie", "serious_violations", "shots_dir"]


def chromium() -> str:
    """The path of Chromium; fails the test (never skips it) when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is missing: apt-get install -y chromium (.ci/run installs it)", pytrace=False)
    return found


class Watched:
    """A page with its console errors (CSP violations are console errors) and main-frame navigations;
    with ``session`` (a daemon), logged in as its owner (the cookie the login URL sets)."""

    def __init__(self, browser: Any, width: int = 1280, session: DaemonHandle | None = None) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        if session is not None:
            self.context.add_cookies([login_cookie(session)])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.navigations = 0
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("framenavigated", self._navigated)

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def close(self) -> None:
        self.context.close()


def login_cookie(d: DaemonHandle) -> dict[str, Any]:
    """The owner's session cookie for ``d``, as ``/login?token=`` sets it."""
    token = (d.state_dir / "api-token").read_text().strip()
    return {
        "name": "foss_token",
        "value": token,
        "url": f"http://127.0.0.1:{d.port}",
        "httpOnly": True,
        "sameSite": "Strict",
    }


def shots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$FOSS_SCREENSHOTS`` when set (the README's), else the test's ``tmp_path``."""
    out = Path(os.environ.get("FOSS_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


#: axe-core, vendored: injected by the tests (the pages' CSP rightly refuses foreign script)
AXE = REPO / "tests" / "e2e" / "vendor" / "axe-core" / "axe.min.js"


def serious_violations(page: Any) -> list[str]:
    """What axe-core finds serious or critical on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])}: {v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
