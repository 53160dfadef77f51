"""``possim lab`` as a trainer uses it: a real ``possim lab`` process, a real Chromium, real clicks.

The server is started once for the module (``--port 0 --no-browser``) and waited for by its
readiness line on stdout, never by a sleep; it is stopped with SIGTERM at teardown. Each step
of the class (load response-lost, restore the lost 0210, lose the 0200, switch to reversal and
to Chinese) is checked on the headline, the money and the chart, and the page is measured at
1366x768 and 1024x768 with the report's geometry checks (tests/layout.py).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.layout import geometry
from tests.procs import POSSIM, Proc, wait_for

VIEWPORTS = ((1366, 768), (1024, 768))
READY = re.compile(r"^possim lab: serving (http://127\.0\.0\.1:\d+/)$")


def read_line(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """The first line ``proc`` prints on stdout, read as it arrives (never a sleep); fails if it exits first."""
    assert proc.stdout is not None
    fd, buf, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no line on stdout within {timeout:g}s"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"exited with {proc.wait(30)} before printing a line"
            buf += chunk
    return buf.split(b"\n")[0].decode()


def _readiness(proc: Proc) -> str:
    """The URL of the lab's readiness line."""
    assert proc.proc is not None
    try:
        line = read_line(proc.proc)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{proc.tail()}") from None
    found = READY.match(line)
    assert found, line
    return found.group(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Proc]]:
    log = tmp_path_factory.mktemp("lab") / "lab.log"
    proc = Proc("lab", ["lab", "--port", "0", "--no-browser"], log).start()
    try:
        yield _readiness(proc), proc
    finally:
        code = proc.stop()  # SIGTERM: uvicorn shuts down, then ends by the signal it was sent
    assert code == -signal.SIGTERM, proc.tail()


def _open(browser, url: str, size: tuple[int, int] = VIEWPORTS[0]):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": size[0], "height": size[1]}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"network request: {r.url}") if not r.url.startswith(url) else None)
    page.goto(url)
    _settled(page, 0)
    return page, errors


def _done(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("document.body.getAttribute('data-done') || '0'"))


def _settled(page, before: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the page shows a run newer than ``before`` (the page marks each run it draws)."""
    page.wait_for_function(f"parseInt(document.body.getAttribute('data-done') || '0', 10) > {before}",
                           timeout=60_000)
    assert page.locator("#error").is_hidden(), page.locator("#error").text_content()


def _act(page, action) -> None:  # type: ignore[no-untyped-def]
    before = _done(page)
    action()
    _settled(page, before)


def _click_arrow(page, mti: str, what: str, col: int = 0) -> None:  # type: ignore[no-untyped-def]
    arrow = page.locator(f"#col-{col} svg .arrow[data-mti='{mti}']").first
    arrow.evaluate("g => g.scrollIntoView({block: 'center'})")  # clear of the sticky step-through bar
    arrow.locator("line.hit").click()
    assert page.locator("#menu").is_visible()
    _act(page, lambda: page.locator(f"#menu button[data-action='{what}']").click())


def _money(page, col: int = 0) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = page.locator(f"#col-{col} .point .money tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        out[row.locator("th").text_content()] = row.locator("td").evaluate("td => td.firstChild.textContent")
    return out


def _arrows(page, col: int = 0) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Each arrow of the chart as (MTI, lost or kind), in the order they were sent."""
    return [tuple(x) for x in page.evaluate(
        f"() => [...document.querySelectorAll('#col-{col} svg .arrow')].map(g => "
        "[g.getAttribute('data-mti'), g.classList.contains('lost') ? 'lost' : 'arrived'])")]


def _headline(page, col: int = 0) -> str:  # type: ignore[no-untyped-def]
    return page.locator(f"#col-{col} .headline").text_content()


def _good(page, col: int = 0) -> bool:  # type: ignore[no-untyped-def]
    return "good" in (page.locator(f"#col-{col} .point").get_attribute("class") or "")


def _measure(page, shots: Path) -> None:  # type: ignore[no-untyped-def]
    """At each projector size: a screenshot, then the report's checks (no overlapping, no cut text)."""
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        shot = shots / f"lab-{width}x{height}-{_done(page)}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        g = geometry(page)
        assert g["count"] > 50
        assert g["overlapCount"] == 0, (width, g["overlaps"])
        assert g["cut"] == [], (width, g["cut"])


def test_a_trainer_edits_response_lost_and_the_page_follows(lab, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = lab
    page, errors = _open(browser, url)
    _act(page, lambda: page.select_option("#scenario", "response-lost"))
    _act(page, lambda: page.select_option("#policy-a", "none"))
    assert "charged €25.00" in _headline(page) and not _good(page)
    assert _money(page)["customer charged without a sale"] == "€25.00"
    assert _arrows(page) == [("0200", "arrived"), ("0210", "lost")]

    _click_arrow(page, "0210", "restore")  # the 0210 the scenario loses now arrives
    assert _good(page), _headline(page)
    assert _money(page)["customer charged without a sale"] == "€0.00"
    changed = page.locator("#col-0 .point .money td.changed")
    assert changed.count() >= 1 and "was €25.00" in changed.first.text_content()
    assert _arrows(page) == [("0200", "arrived"), ("0210", "arrived")]
    assert page.locator("#edit-list .edit").all_text_contents() == ["restore: 0210 #1 to the terminal"]

    _click_arrow(page, "0200", "drop")  # now the purchase itself never reaches the host
    assert _good(page), _headline(page)
    assert _money(page)["bank settlement"] == "0 debit(s), €0.00"
    assert _arrows(page) == [("0200", "lost")]
    assert page.locator("#col-0 .point .money td.changed").count() >= 1  # the settlement was €25.00 before

    _act(page, lambda: page.select_option("#policy-a", "reversal"))
    assert "reversal" in page.locator("#col-0 h2.policy").text_content()
    assert ("0400", "arrived") in _arrows(page)  # the terminal reverses the purchase it never heard of
    assert _good(page) and _money(page)["customer charged without a sale"] == "€0.00"
    _measure(page, tmp_path)

    page.select_option("#lang", "zh")  # the page reloads in Chinese, with the same case
    page.wait_for_url(re.compile(r"lang=zh"))
    _settled(page, 0)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert re.search(r"[\u4e00-\u9fff]", _headline(page)), _headline(page)
    assert page.locator("#policy-a").input_value() == "reversal"
    assert page.locator("#edit-list .edit").count() == 2
    money = _money(page)  # in Chinese the scenario runs in yuan, as possim run --lang zh runs it
    assert "€" not in "".join(money.values()) and "¥0.00" in money.values(), money
    assert "自动冲正" in page.locator("#col-0 h2.policy").text_content()
    assert _arrows(page)[0] == ("0200", "lost") and ("0400", "arrived") in _arrows(page)
    assert "冲正" in page.locator("#col-0 .legend").text_content()
    _measure(page, tmp_path)
    assert errors == []
    page.close()


def test_two_policies_side_by_side_step_through_and_presentation(lab, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = lab
    page, errors = _open(browser, url)
    _act(page, lambda: page.select_option("#scenario", "response-lost"))
    _act(page, lambda: page.select_option("#policy-a", "none"))
    _act(page, lambda: page.select_option("#policy-b", "query"))
    assert page.locator("#runs .run-col").count() == 2
    assert not _good(page, 0) and _good(page, 1)
    story = page.locator("p.story")  # one scenario: its description once, above both policies' columns
    assert story.count() == 1 and page.locator("#story p.story").count() == 1, story.all_text_contents()
    assert story.is_visible() and story.text_content().strip()
    assert ("0600", "arrived") in _arrows(page, 1) and all(m != "0600" for m, _ in _arrows(page, 0))

    _click_arrow(page, "0210", "delay", col=1)  # one edit re-runs both policies
    for col in (0, 1):
        assert ("0210", "arrived") in _arrows(page, col)
    assert "(late)" in page.locator("#col-0 svg").text_content()

    page.keyboard.press("Home")
    caption = page.locator("#col-0 .caption")
    assert caption.text_content().startswith("step 1 of ")
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    assert caption.text_content().startswith("step 3 of ")
    page.keyboard.press("ArrowLeft")
    assert caption.text_content().startswith("step 2 of ")
    assert page.locator("#col-0 svg .future").count() > 0

    page.keyboard.press("p")
    assert "present" in page.evaluate("document.body.className")
    assert page.locator(".toolbar").is_hidden() and story.is_hidden()
    assert caption.text_content().startswith("step 1 of ")
    assert float(page.locator("#col-0 .headline").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 28
    page.keyboard.press("ArrowRight")
    assert caption.text_content().startswith("step 2 of ")
    _measure(page, tmp_path)
    page.keyboard.press("Escape")
    assert page.locator(".toolbar").is_visible()
    _act(page, lambda: page.select_option("#scenario", "merchant-chain"))  # a fleet: its own page, both policies
    assert page.locator("#runs iframe.fleet").count() == 1 and page.locator("#runs .run-col").count() == 0
    fleet = page.frame_locator("#runs iframe.fleet")
    assert "query" in fleet.locator("body").text_content()
    assert errors == []
    page.close()


def _chart_type(page) -> float:  # type: ignore[no-untyped-def]
    """The height on screen of the chart's tallest label line (its type size as the reader sees it)."""
    return float(page.evaluate("() => Math.max(...[...document.querySelectorAll('#col-0 svg.msc tspan')]"
                               ".map(t => t.getBoundingClientRect().height))"))


def test_presentation_mode_shows_the_chart_in_larger_type(lab, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One policy already fills the width: presentation crops the chart to its labels, so its type grows."""
    url, _ = lab
    page, errors = _open(browser, url)
    _act(page, lambda: page.select_option("#scenario", "response-lost"))
    _act(page, lambda: page.select_option("#policy-a", "none"))
    view = page.locator("#col-0 svg.msc").get_attribute("viewBox")
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        before = _chart_type(page)
        page.keyboard.press("p")
        page.keyboard.press("End")  # every step shown, the current one in bold: the widest the labels get
        assert _chart_type(page) > before * 1.03, (width, before, _chart_type(page))
        page.keyboard.press("Escape")
        assert page.locator("#col-0 svg.msc").get_attribute("viewBox") == view
    page.keyboard.press("p")
    for width, height in VIEWPORTS:  # larger, and still nothing overlapping or cut
        page.set_viewport_size({"width": width, "height": height})
        g = geometry(page)
        assert g["count"] > 20 and g["overlapCount"] == 0 and g["cut"] == [], (width, g)
    assert errors == []
    page.close()


def test_the_edited_case_saves_as_a_scenario_possim_runs_and_as_the_report(lab, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = lab
    page, errors = _open(browser, url)
    _act(page, lambda: page.select_option("#scenario", "response-lost"))
    _act(page, lambda: page.select_option("#policy-a", "none"))
    _click_arrow(page, "0210", "restore")
    _click_arrow(page, "0200", "duplicate")
    with page.expect_download() as got:
        page.click("#save-toml")
    scenario = tmp_path / got.value.suggested_filename
    got.value.save_as(scenario)
    assert scenario.name == "response-lost-edited.toml"
    faults = tomllib.loads(scenario.read_text(encoding="utf-8"))["faults"]
    assert faults == [{"action": "duplicate", "direction": "to_host", "mti": "0200", "nth": 1}]
    run = subprocess.run([*POSSIM, "run", str(scenario), "--policy", "none", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["approved"] == 1 and summary["double_debits"] == 0 and summary["orphaned_debits"] == 0

    with page.expect_download() as got:
        page.click("#save-html")
    report = tmp_path / "report.html"
    got.value.save_as(report)
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "0200" in html and "<script src" not in html
    assert "data-mti='0200'" in html
    assert errors == []
    page.close()


@pytest.mark.parametrize(("path", "body", "line"), [
    ("/api/run", b'{"scenario": "no-such-thing"}', "scenario: unknown scenario 'no-such-thing'"),
    ("/api/run", b'{"scenario": "response-lost", "policies": ["hope"]}', "policies.0: unknown policy 'hope'"),
    ("/api/run", b"{not json", "the request is not JSON"),
    ("/api/run", b'{"scenario": "response-lost", "edits": [{"action": "drop"}]}', "edits.0: an object with exactly"),
    ("/api/run", b'{"scenario": "response-lost", "edits": [{"action": "drop", "direction": "to_host", '
                 b'"mti": "9999", "nth": 1}]}', "edits.0.mti: unknown MTI '9999'"),
    ("/api/run", b'{"scenario": "response-lost", "edits": [{"action": "drop", "direction": "to_host", '
                 b'"mti": "hello", "nth": 1}]}', "edits.0.mti: unknown MTI 'hello'"),
    ("/api/run", b'{"scenario": "response-lost", "edits": [{"action": "drop", "direction": "to_host", '
                 b'"mti": "0200", "nth": ' + b"9" * 5000 + b"}]}", "edits.0.nth: a whole number from 1"),
    ("/download/scenario.toml?case=" + urllib.parse.quote(
        '{"scenario": "response-lost", "edits": [{"action": "drop", "direction": "to_host", "mti": "0200", '
        '"nth": ' + "9" * 5000 + "}]}"), None, "edits.0.nth: a whole number from 1"),
    ("/?lang=fr", None, "lang: unknown language 'fr'"),
    ("/download/scenario.toml?case=%7Bx", None, "case: not JSON"),
])
def test_bad_input_gets_one_line_and_400_and_is_logged(lab, path: str, body: bytes | None, line: str) -> None:
    url, proc = lab
    request = urllib.request.Request(url.rstrip("/") + path, data=body, method="POST" if body is not None else "GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)  # the lab on 127.0.0.1
    answer = caught.value.read().decode()
    caught.value.close()
    assert caught.value.code == 400
    assert line in answer and answer.count("\n") == 1 and "Traceback" not in answer, answer
    assert ".toml" not in answer, answer  # the line names the key, never a file of the server
    assert any(e.get("event") == "lab.bad_request" and line in e.get("error", "") for e in proc.events())


def _post(url: str, case: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url + "api/run", data=json.dumps(case).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        data: dict[str, object] = json.loads(answer.read())
    return data


def _get(url: str, path: str, case: dict[str, object]) -> str:
    with urllib.request.urlopen(f"{url}{path}?case={urllib.parse.quote(json.dumps(case))}", timeout=120) as answer:
        text: str = answer.read().decode()
    return text


def test_in_chinese_the_lab_runs_in_yuan_with_unionpay_cards_as_possim_run_does(lab) -> None:  # type: ignore[no-untyped-def]
    """``possim run --lang zh`` sets a scenario in the Chinese market (yuan, 621234... cards): the lab's runs, its
    report download and a fleet's page do the same, and name the policies and transport in Chinese."""
    url, _ = lab
    case = {"scenario": "response-lost", "policies": ["none", "reversal"], "lang": "zh"}
    answer = _post(url, case)
    runs = answer["runs"]
    assert isinstance(runs, list) and len(runs) == 2
    shown = json.dumps(answer, ensure_ascii=False)
    assert "¥25.00" in runs[0]["point"] and "€" not in shown, shown[:2000]
    assert "621234" in shown and "400000" not in shown
    heading = runs[0]["heading"]  # the words of possim run --report's heading, not --policy's names
    assert "无恢复" in heading and "内存" in heading and "none" not in heading and "memory" not in heading, heading
    assert "自动冲正" in runs[1]["heading"]
    report = _get(url, "download/report.html", case)
    assert "¥25.00" in report and "€" not in report and "621234" in report and "400000" not in report
    english = _post(url, {**case, "lang": "en"})["runs"]
    assert isinstance(english, list) and "€25.00" in english[0]["point"] and "none" in english[0]["heading"]
    fleet = _post(url, {"scenario": "merchant-chain", "policies": ["none"], "lang": "zh"})["fleet"]
    assert isinstance(fleet, str) and "¥" in fleet and "€" not in fleet


def test_in_chinese_the_policy_choices_show_the_words_and_keep_the_name_the_run_takes() -> None:
    from possim.views import lab

    page = lab.page("zh")
    assert "<option value='none'>无恢复</option>" in page and "<option value='reversal'>自动冲正</option>" in page
    assert "<option value='none'>none</option>" in lab.page("en")


def test_every_lost_arrow_names_the_message_the_fault_layer_dropped() -> None:
    """An arrow's identity (direction, MTI, nth) is the fault layer's own count, so a click edits that message
    (a message lost to a down host, a cut line or a terminal that is off is not the fault layer's drop)."""
    from possim.protocol import events as ev
    from possim.scenario import load
    from possim.simulation import simulate
    from possim.views.msc import HOST_DOWN, IN_FLIGHT, LINE_CUT, TERMINAL_OFF, build
    from tests.conftest import SCENARIOS

    compared = 0
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load(path)
        if scenario.is_fleet:
            continue
        records = simulate(scenario, "none").trace.records
        dropped = sorted((s.event.dir, s.event.mti, s.event.nth) for s in records
                         if isinstance(s.event, ev.NetDropped))
        lost = sorted((a.direction, a.mti, a.nth) for a in build(records).arrows
                      if a.lost and not a.duplicate and a.lost not in (TERMINAL_OFF, HOST_DOWN, LINE_CUT, IN_FLIGHT))
        assert lost == dropped, path.name
        compared += len(dropped)
    assert compared >= 5


def test_every_word_of_the_lab_has_a_chinese_entry() -> None:
    from possim.i18n import Tr
    from possim.views import lab

    Tr.missing.clear()
    lab.page("zh")
    edits = [{"action": a, "direction": "to_terminal", "mti": "0210", "nth": 1} for a in lab.ACTIONS]
    lab.run(lab.parse_case({"scenario": "response-lost", "policies": ["none", "reversal"], "lang": "zh",
                            "edits": edits}))
    assert sorted(m for _, m in Tr.missing) == []


def test_every_shipped_scenario_runs_in_the_lab() -> None:
    """Each one the page offers: a one-terminal scenario as the report's parts, a fleet as its own page."""
    from possim import shipped
    from possim.views import lab

    offered = [name for name, _ in lab._choices("en")]
    assert offered == shipped.names()
    for name in offered:
        answer = lab.run(lab.parse_case({"scenario": name, "policies": ["none"]}))
        if answer["runs"]:
            assert "class='headline'" in answer["runs"][0]["point"] and "<svg" in answer["runs"][0]["chart"], name
        else:
            assert answer["fleet"].lower().startswith("<!doctype html>") and "headline" in answer["fleet"], name
    assert any("fleet" in lab.run(lab.parse_case({"scenario": n})) for n in offered)


def test_the_lab_opens_its_page_in_the_browser_the_user_has_in_the_language_asked(tmp_path: Path) -> None:
    """Without --no-browser the URL goes to ``webbrowser`` (here $BROWSER: a command that writes it to a file)."""
    seen = tmp_path / "opened"
    env = {**os.environ, "BROWSER": f"{sys.executable} -c \"import sys, pathlib; "
                                    f"pathlib.Path(sys.argv[1]).write_text(sys.argv[2])\" {seen} %s"}
    proc = subprocess.Popen([*POSSIM, "lab", "--port", "0", "--lang", "zh"], stdout=subprocess.PIPE, env=env)
    try:
        found = READY.match(read_line(proc))
        assert found
        url = found.group(1)
        wait_for(lambda: (seen.is_file() and seen.read_text() == url) or None, 60, f"the browser to be given {url}")
        with urllib.request.urlopen(url, timeout=60) as answer:  # --lang: the page's language until it switches
            assert "<html lang='zh-CN'>" in answer.read().decode()
    finally:
        proc.terminate()
        assert proc.wait(60) is not None
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_request_for_another_host_name_is_refused(lab) -> None:
    """The lab answers only to 127.0.0.1 and localhost: a page elsewhere cannot rename its way in."""
    url, _ = lab
    request = urllib.request.Request(url, headers={"Host": "lab.example.com"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    caught.value.close()
    assert caught.value.code == 400
    with urllib.request.urlopen(url.replace("127.0.0.1", "localhost"), timeout=60) as answer:
        assert answer.status == 200


def test_a_port_already_taken_is_one_line_and_exit_2() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run([*POSSIM, "lab", "--port", str(port), "--no-browser"], capture_output=True, text=True,
                             timeout=120)
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.startswith(f"possim: error: --port {port}: cannot listen on 127.0.0.1") and \
        ran.stderr.count("\n") == 1, ran.stderr
