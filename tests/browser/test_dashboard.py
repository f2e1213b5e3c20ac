"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``.ci/run`` installs), driven by Selenium, loads ``orgctl dashboard`` -- a real child process -- serving a real
running org: the template's three Animas applied by ``orgctl apply``, their supervisor and processes up, the
model replayed from a cassette that holds no call (every model call fails fast, as a replay must; nothing
reaches a real model).

A screenshot of each view is saved under ``build/test-artifacts/dashboard/`` (docs/dashboard.md shows them).
Without Chromium these tests are skipped, loudly, unless ``ORGCTL_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
where a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from orgctl.paths import StatePaths
from tests.conftest import commit_all, run_cli, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "dashboard"

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    if os.environ.get("ORGCTL_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"the browser tests need {CHROMIUM} and {DRIVER}: "
                           "apt-get install -y chromium chromium-driver")
    pytest.skip("no Chromium here (apt-get install -y chromium chromium-driver); .ci/run installs it",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only where a browser exists)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def org_up(running: Path, state: StatePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The template org applied and running, its model a replay of an empty cassette."""
    cassette = tmp_path / "cassette.jsonl"
    cassette.write_text("")
    monkeypatch.setenv("ORGCTL_CASSETTE", str(cassette))
    result = run_cli("apply", str(running), "--auto-approve")
    assert result.exit_code == 0, result.output
    return running


@pytest.fixture
def dashboard(org_up: Path) -> Iterator[str]:
    """``orgctl dashboard ORG --listen 127.0.0.1:0`` as a child process; yields its address."""
    proc = subprocess.Popen([sys.executable, "-m", "orgctl", "dashboard", str(org_up), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    line = proc.stdout.readline() if proc.stdout else ""
    assert " at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr
                                             else "")
    url = line.split(" at ", 1)[1].split()[0]
    try:
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) is not None


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> None:
    """The whole page (up to 2,400 px tall) as ``ARTIFACTS/<name>.png``, through the DevTools protocol."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": clip})["data"]
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(data))


def read(driver: Any, selector: str) -> list[dict[str, Any]]:
    """Every element matching ``selector`` as ``{"text", "html_children", "x", "y", <data-* attributes>}``, read in
    one script: the page re-renders when its polled JSON changes, so an element found first and read later
    may be gone."""
    return driver.execute_script("""
        return [...document.querySelectorAll(arguments[0])].map((e) => {
          const r = e.getBoundingClientRect();
          const out = {text: e.innerText, html_children: e.querySelectorAll("script, img, iframe").length,
                       x: r.left, y: r.top};
          for (const [k, v] of Object.entries(e.dataset)) out[k] = v;
          return out;
        });""", selector)


def cards(driver: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in read(driver, "#org-tree .card")}


def no_page_errors(driver: Any) -> None:
    """No script error and no Content-Security-Policy violation in the page's console."""
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def test_the_org_tree_shows_alice_above_bob_and_carol_with_their_health(dashboard: str, browser: Any) -> None:
    browser.get(dashboard)
    shown = wait_for(lambda: (c := cards(browser)) and len(c) == 3 and c, timeout=20, what="three cards")
    alice, bob, carol = shown["alice"], shown["bob"], shown["carol"]
    assert alice["y"] < bob["y"] and alice["y"] < carol["y"]
    assert bob["y"] == carol["y"] and bob["x"] < carol["x"]
    for card in shown.values():
        assert card["health"] == "Healthy"
        assert "Healthy" in card["text"] and "Synced" in card["text"] and "Ready" in card["text"]
    assert "engineer" in bob["text"] and "local/smollm2" in bob["text"]
    assert browser.find_element(By.ID, "org-health").text == "Healthy"
    shot(browser, "org")
    browser.find_element(By.CSS_SELECTOR, ".card[data-name='alice']").click()
    wait_for(lambda: browser.find_elements(By.XPATH, "//h3[text()='Conditions']"), timeout=10, what="alice's page")
    assert browser.current_url.endswith("#/anima/alice")
    no_page_errors(browser)


def test_a_task_added_with_the_cli_appears_without_a_reload(org_up: Path, dashboard: str, browser: Any) -> None:
    browser.get(dashboard + "#/work")
    wait_for(lambda: "Tasks (" in browser.find_element(By.ID, "view").text, timeout=20, what="the Work view")
    browser.execute_script("window.sameDocument = 'yes'")
    title = "Compare the three queue libraries"
    result = run_cli("task", "add", "carol", title, "-C", str(org_up))
    assert result.exit_code == 0, result.output
    wait_for(lambda: title in browser.find_element(By.ID, "view").text, timeout=15, what="the new task shown")
    assert browser.execute_script("return window.sameDocument") == "yes"  # polled in, not reloaded
    browser.get(dashboard + "#/org")
    wait_for(lambda: "1 open" in cards(browser).get("carol", {}).get("text", ""), timeout=15,
             what="carol's queue depth")
    browser.get(dashboard + "#/work")
    wait_for(lambda: title in browser.find_element(By.ID, "view").text, timeout=15, what="the Work view again")
    shot(browser, "work")
    no_page_errors(browser)


def test_a_memory_commit_page_shows_the_note_that_was_learned(org_up: Path, state: StatePaths, dashboard: str,
                                                              browser: Any) -> None:
    from orgctl.memory.stores import MemoryStore

    memory = Path(json.loads(state.spec_snapshot("bob").read_text())["memory_dir"])
    store = MemoryStore(memory, anima="bob")
    with store.writing():
        store.append_episode(day=date.today(), markdown="## 10:00:00 heartbeat\n\n- Did: replied to alice: merged",
                             record={"at": f"{date.today().isoformat()}T10:00:00",
                                     "did": ["replied to alice: merged the logging upgrade"]})
    done = run_cli("consolidate", str(org_up), "--anima", "bob")
    assert done.exit_code == 0 and "commit " in done.output, done.output
    sha = done.output.split("commit ", 1)[1].split()[0].strip(",")

    browser.get(dashboard + "#/anima/bob")
    [link] = wait_for(lambda: read(browser, "a[data-sha]"), timeout=20, what="bob's commits")
    assert link["text"] == sha and link["sha"].startswith(sha)
    shot(browser, "anima")
    browser.find_element(By.CSS_SELECTOR, f"a[data-sha^='{sha}']").click()
    [note] = wait_for(lambda: read(browser, ".note-diff[data-path$='knowledge/alice.md']"), timeout=15,
                      what="the learned note")
    assert note["action"] == "learned"
    assert "+ - " in note["text"] and "replied to alice: merged the logging upgrade" in note["text"]
    assert "Working with alice" in note["text"]
    trailers = browser.find_element(By.ID, "view").text
    assert "Pass consolidate" in trailers and "Anima bob" in trailers
    shot(browser, "memory-commit")
    no_page_errors(browser)


def test_an_injected_script_in_a_message_is_shown_as_text(org_up: Path, dashboard: str, browser: Any) -> None:
    hostile = '<script>window.pwned = 1; document.title = "pwned"</script><img src=x onerror="window.pwned=2">'
    assert run_cli("send", "human", "alice", f"Please read {hostile}", "-C", str(org_up)).exit_code == 0
    assert run_cli("board", "post", "general", f"FYI {hostile}", "-C", str(org_up)).exit_code == 0
    browser.get(dashboard + "#/anima/alice")
    [message] = wait_for(lambda: [m for m in read(browser, ".message") if "pwned" in m["text"]],
                         timeout=20, what="the message on alice's page")
    assert message["text"] == f"Please read {hostile}"  # every character, as text
    assert message["html_children"] == 0
    browser.get(dashboard + "#/work")
    [post] = wait_for(lambda: [m for m in read(browser, ".message") if "FYI" in m["text"]],
                      timeout=20, what="the Board post")
    assert post["text"] == f"FYI {hostile}" and post["html_children"] == 0
    time.sleep(0.5)
    assert browser.execute_script("return window.pwned") is None and "pwned" not in browser.title
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # the page's own, nothing injected


def test_the_plan_view_shows_the_hire_before_and_after(org_up: Path, dashboard: str, browser: Any) -> None:
    dave = org_up / "animas" / "dave"
    shutil.copytree(org_up / "animas" / "carol", dave)
    (dave / "identity.md").write_text("# Dave\n\nA tester who reports to bob.\n")
    text = (dave / "anima.yaml").read_text().replace("role: researcher", "role: tester").replace(
        "supervisor: alice", "supervisor: bob")
    (dave / "anima.yaml").write_text(text)
    commit_all(org_up, "hire dave")
    browser.get(dashboard + "#/plan")
    error = "animas/dave/anima.yaml:2: role: unknown role 'tester'"
    wait_for(lambda: error in browser.find_element(By.ID, "view").text, timeout=20,
             what="the spec's error, with file and line")
    (dave / "anima.yaml").write_text(text.replace("role: tester", "role: writer"))
    commit_all(org_up, "dave writes")
    wait_for(lambda: "1 to hire" in browser.find_element(By.ID, "view").text, timeout=20, what="the plan")
    rows = browser.find_element(By.ID, "view").text
    assert "+ dave hire" in rows
    drawn = ("const i = [...document.querySelectorAll('.charts img')]; "
             "return i.length === 2 && i.every((x) => x.complete && x.naturalWidth > 0)")
    wait_for(lambda: browser.execute_script(drawn), timeout=10, what="both charts drawn")
    assert browser.find_element(By.ID, "org-sync").text == "OutOfSync"
    cards_after = wait_for(lambda: (browser.get(dashboard + "#/org"), cards(browser))[1], timeout=10, what="cards")
    assert len(cards_after) == 3  # dave is in the plan, not running
    browser.get(dashboard + "#/plan")
    wait_for(lambda: "1 to hire" in browser.find_element(By.ID, "view").text, timeout=20, what="the plan again")
    shot(browser, "plan")
    no_page_errors(browser)
