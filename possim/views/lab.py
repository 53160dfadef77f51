"""``possim lab``: the trainer's live lab, a local page where a run is edited and re-run at once.

A trainer picks a shipped scenario, one or two policies and a language; the page shows what
``possim run --report`` shows (the point, the money, the sequence chart: :func:`possim.views.html_report.parts`,
never rendered twice). Clicking an arrow of the chart loses, delays or duplicates that message, or
restores it: the page sends the scenario's name and the list of edits, and the run is simulated
again in virtual time with the same seed.

An edit is a scenario fault rule (``[[faults]]``: action, direction, MTI, nth), so what the page
shows is exactly what ``possim run`` does with the downloaded scenario file. An arrow carries
its message's identity as the fault layer counts it (``possim.views.msc.Arrow.direction``/``nth``);
an edit on a message replaces any rule of the scenario on that same message.

A fleet scenario (``[[terminals]]``) shows its own summary page (:mod:`possim.fleets.fleet_view`), which
has no arrows to click. Only shipped scenarios are served (by name: a web request never names a file), and bad input
gets one line and status 400, logged as ``lab.bad_request``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import structlog
import tomli_w

from possim import shipped
from possim.i18n import LANGS, LanguageError, Tr, resolve
from possim.pos_sim.policies import REGISTRY as POLICIES
from possim.protocol.faults import DIRECTIONS
from possim.protocol.mti import KNOWN
from possim.protocol.wallet import KINDS as WALLET_KINDS
from possim.scenario import Scenario, ScenarioError, from_dict, load
from possim.simulation import simulate
from possim.views.html_report import CSS as REPORT_CSS
from possim.views.html_report import parts, render
from possim.views.lesson import story

ASSETS = Path(__file__).parent.with_name("data") / "lab"
#: What a click can do to a message; ``restore`` takes the rule on it away.
ACTIONS = ("drop", "delay", "duplicate", "restore")
#: A delayed message arrives this long after the longest timeout of the terminal: always too late.
PAST_TIMEOUT = 5.0
MAX_EDITS = 50
#: Longer integers in a request are read as floats (so refused as a count, with the key named): Python refuses
#: to convert integers of more than 4300 digits, and none of the lab's numbers needs more than a few.
MAX_DIGITS = 30
#: The message types an edit may name: those a scenario's ``[[faults]]`` rule accepts.
MTIS = sorted(KNOWN | WALLET_KINDS)

_LOG = structlog.wrap_logger(structlog.PrintLogger(sys.stderr), processors=[
    structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer(sort_keys=True)])


class LabError(ValueError):
    """Bad input from the page: one line naming the key and what is wrong (status 400)."""


@dataclass(frozen=True)
class Edit:
    """One click on an arrow: what to do to the ``nth`` message ``mti`` going ``direction``."""

    action: str
    direction: str
    mti: str
    nth: int


@dataclass(frozen=True)
class Case:
    """What the page asks to see: a shipped scenario, its edits, one or two policies, a language."""

    scenario: str
    policies: tuple[str, ...]
    lang: str
    edits: tuple[Edit, ...]


def loads(text: str | bytes) -> Any:
    """JSON from the page, with any integer too long to be one of the lab's numbers read as a float
    (``inf``), so ``parse_case`` names the key rather than the conversion failing (``ValueError``)."""
    return json.loads(text, parse_int=_bounded_int)


def _bounded_int(digits: str) -> int | float:
    return int(digits) if len(digits.lstrip("-")) <= MAX_DIGITS else float(digits)


def parse_case(data: Any) -> Case:
    """The page's request, checked key by key; every problem is one ``LabError`` line."""
    if not isinstance(data, dict):
        raise LabError("the request must be a JSON object with scenario, policies, lang and edits")
    unknown = sorted(set(data) - {"scenario", "policies", "lang", "edits"})
    if unknown:
        raise LabError(f"unknown key {unknown[0]!r} (known: scenario, policies, lang, edits)")
    name = data.get("scenario")
    if not isinstance(name, str) or name not in shipped.names():
        raise LabError(f"scenario: unknown scenario {name!r} (choose a shipped one: possim list)")
    policies = data.get("policies", ["none"])
    if not isinstance(policies, list) or not 1 <= len(policies) <= 2:
        raise LabError("policies: a list of one or two policy names")
    for i, p in enumerate(policies):
        if p not in POLICIES:
            raise LabError(f"policies.{i}: unknown policy {p!r} (choose from {', '.join(POLICIES.names())})")
    lang = data.get("lang", "en")
    if lang not in LANGS:
        raise LabError(f"lang: unknown language {lang!r} (choose from {', '.join(LANGS)})")
    edits = data.get("edits", [])
    if not isinstance(edits, list) or len(edits) > MAX_EDITS:
        raise LabError(f"edits: a list of at most {MAX_EDITS} edits")
    return Case(name, tuple(policies), lang, tuple(_edit(e, i) for i, e in enumerate(edits)))


def _edit(data: Any, i: int) -> Edit:
    if not isinstance(data, dict) or set(data) != {"action", "direction", "mti", "nth"}:
        raise LabError(f"edits.{i}: an object with exactly action, direction, mti and nth")
    if data["action"] not in ACTIONS:
        raise LabError(f"edits.{i}.action: {data['action']!r} is not one of {', '.join(ACTIONS)}")
    if data["direction"] not in DIRECTIONS:
        raise LabError(f"edits.{i}.direction: {data['direction']!r} is not one of {', '.join(DIRECTIONS)}")
    if not isinstance(data["mti"], str) or not data["mti"]:
        raise LabError(f"edits.{i}.mti: a message type such as '0210'")
    if data["mti"] not in MTIS:  # checked here, so the line names the edit, not the rule it becomes
        raise LabError(f"edits.{i}.mti: unknown MTI {data['mti']!r} (known: {', '.join(MTIS)})")
    nth = data["nth"]
    if not isinstance(nth, int) or isinstance(nth, bool) or not 1 <= nth <= 1_000_000:
        raise LabError(f"edits.{i}.nth: a whole number from 1")
    return Edit(data["action"], data["direction"], data["mti"], nth)


def edited_raw(case: Case) -> dict[str, Any]:
    """The scenario as its file says, with the edits applied to its ``[[faults]]``.

    The file's own keys only (``exclude_unset``), so a profile's defaults still apply when the
    downloaded file is run. An edited scenario's ``[expect]`` no longer describes it: it is left out.
    """
    original = load(case.scenario)
    raw: dict[str, Any] = original.base.model_dump(mode="json", exclude_unset=True)
    if not case.edits:
        return raw
    faults: list[dict[str, Any]] = list(raw.get("faults", []))
    late = max(original.model.terminal.response_timeout, original.model.terminal.reversal_timeout,
               original.model.terminal.query_timeout, original.model.terminal.advice_timeout) + PAST_TIMEOUT
    for e in case.edits:
        faults = [f for f in faults if (f["direction"], f["mti"], f.get("nth", 1)) != (e.direction, e.mti, e.nth)]
        if e.action == "delay":
            faults.append({"action": "delay", "direction": e.direction, "mti": e.mti, "nth": e.nth, "delay": late})
        elif e.action != "restore":
            faults.append({"action": e.action, "direction": e.direction, "mti": e.mti, "nth": e.nth})
    raw["faults"] = faults
    raw.pop("expect", None)
    return raw


def scenario_of(case: Case) -> Scenario:
    """The edited scenario, validated as a file would be (under the shipped file's path, so its
    translated title and description still apply), in the market of the case's language as
    ``possim run --lang`` sets it (:meth:`possim.scenario.Scenario.in_market`: yuan and UnionPay cards in Chinese).
    A problem names the scenario, never the server's path to its file."""
    path = shipped.resolve(case.scenario)
    try:
        return from_dict(edited_raw(case), path).in_market(case.lang)
    except ScenarioError as exc:
        raise LabError(str(exc).splitlines()[0].replace(str(path), case.scenario)) from None


def rules(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The fault rules in force, for the page to know which arrows can be restored."""
    return [{"action": f["action"], "direction": f["direction"], "mti": f["mti"], "nth": f.get("nth", 1)}
            for f in raw.get("faults", [])]


def describe(edit: Edit, tr: Tr) -> str:
    """One edit in the reader's words, for the list of edits on the page."""
    where = tr("to the host") if edit.direction == "to_host" else tr("to the terminal")
    what = {"drop": tr("lose"), "delay": tr("delay past the timeout"), "duplicate": tr("duplicate"),
            "restore": tr("restore")}[edit.action]
    return tr("{what}: {mti} #{nth} {where}", what=what, mti=edit.mti, nth=edit.nth, where=where)


def run(case: Case) -> dict[str, Any]:
    """Simulate the edited scenario under each policy; the rendered parts of each run, the rules, the edits."""
    sc = scenario_of(case)
    tr = Tr(case.lang)
    headings = {"verdict": tr("Checker verdict"), "ledger": tr("Card accounts at the bank"),
                "reconciliation": tr("Reconciliation")}
    common = {"rules": rules(edited_raw(case)), "headings": headings, "edits": [describe(e, tr) for e in case.edits]}
    if sc.is_fleet:  # many terminals: the fleet's own page (possim.fleets.fleet_view), every policy in it
        return {"runs": [], "story": "", "fleet": _fleet_page(sc, case), **common}
    runs = []
    for i, policy in enumerate(case.policies):
        result = simulate(sc, policy)
        heading = tr("Policy {policy} (seed {seed}, {transport})", policy=tr.policy(policy), seed=result.seed,
                     transport=tr.transport(result.transport))
        runs.append({"policy": policy, "heading": heading,
                     **asdict(parts(result, case.lang, i, compared=len(case.policies) > 1))})
    # one scenario, one description: shown once above the runs, not repeated in every policy's column
    description = runs[0]["story"] if runs else ""
    return {"runs": [{k: v for k, v in r.items() if k != "story"} for r in runs], "story": description, **common}


def _fleet_page(sc: Scenario, case: Case) -> str:
    """A fleet scenario's report page ``possim run --report`` writes for it, every policy asked."""
    from possim.fleets import fleet_view
    from possim.fleets.fleet import simulate_fleet

    return fleet_view.render([simulate_fleet(sc, p) for p in case.policies], sc.model.title, None, case.lang)


def scenario_file(case: Case) -> tuple[str, str]:
    """The edited case as a scenario file ``possim run FILE`` accepts: its name and its TOML."""
    scenario_of(case)  # validated before it is offered
    suffix = "-edited" if case.edits else ""
    return f"{case.scenario}{suffix}.toml", tomli_w.dumps(edited_raw(case), multiline_strings=True)


def report_file(case: Case) -> tuple[str, str]:
    """The edited case's standalone HTML report, the one ``possim run --report`` writes (every policy asked)."""
    sc = scenario_of(case)
    name = f"{case.scenario}-{'-'.join(case.policies)}.html"
    if sc.is_fleet:
        return name, _fleet_page(sc, case)
    return name, render([simulate(sc, p) for p in case.policies], sc.model.title, case.lang)


@cache
def _choices(lang: str) -> list[tuple[str, str]]:
    """Every shipped scenario and its title in ``lang``."""
    return [(name, story(load(name), lang)[0]) for name in shipped.names()]


def page(lang: str) -> str:
    """The lab's page: the choices and every word in ``lang``; the run itself arrives as JSON."""
    from html import escape as e

    tr = Tr(lang)
    words = {"step": tr("step {n} of {total}"), "was": tr("was {value}"), "lose": tr("lose"),
             "delay": tr("delay past the timeout"), "duplicate": tr("duplicate"), "restore": tr("restore"),
             "cancel": tr("cancel"), "none": tr("none yet")}
    scenarios = "".join(f"<option value='{e(n)}'>{e(title)} ({e(n)})</option>" for n, title in _choices(lang))
    # the value is the name --policy takes
    first = "".join(f"<option value='{e(p)}'>{e(tr.policy(p))}</option>" for p in POLICIES.names())
    second = f"<option value=''>{e(tr('(none)'))}</option>" + first
    langs = "".join(f"<option value='{code}'{' selected' if code == lang else ''}>{e(name)}</option>"
                    for code, name in (("en", "English"), ("zh", "中文")))
    help_text = tr("Click an arrow to lose, delay or duplicate that message. Keys: right arrow or space, one step; "
                   "left arrow, back; Home, the start; End, all; P, presentation mode.")
    field = "<label class='field'><span>{}</span>{}</label>".format
    return (f"<!DOCTYPE html><html lang='{tr.html_lang}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{e(tr('possim lab'))}</title><style>{REPORT_CSS}</style>"
            "<link rel='icon' href='data:,'><link rel='stylesheet' href='/static/lab.css'></head><body>"
            f"<header class='toolbar'><h1>{e(tr('possim lab'))}</h1>"
            + field(e(tr("scenario")), f"<select id='scenario'>{scenarios}</select>")
            + field(e(tr("policy")), f"<select id='policy-a'>{first}</select>")
            + field(e(tr("second policy")), f"<select id='policy-b'>{second}</select>")
            + field(e(tr("language")), f"<select id='lang'>{langs}</select>")
            + f"<button id='reset'>{e(tr('undo all edits'))}</button>"
            f"<button id='present'>{e(tr('presentation mode'))}</button>"
            f"<a id='save-toml' download href='#'>{e(tr('save as a scenario file'))}</a>"
            f"<a id='save-html' download href='#'>{e(tr('save as an HTML report'))}</a></header>"
            f"<p class='help'>{e(help_text)}</p><p id='error' role='alert' hidden></p>"
            f"<div id='edits' class='edits'><b>{e(tr('Edits'))}</b> <span id='edit-list'>"
            f"{e(tr('none yet'))}</span></div>"
            "<div id='story'></div><main id='runs' class='runs'></main><div id='menu' class='menu' hidden></div>"
            f"<script type='application/json' id='lab-words'>{_json(words)}</script>"
            "<script src='/static/lab.js'></script></body></html>")


def _json(data: object) -> str:
    """JSON to put inside a ``<script>`` element: no ``</`` can close it early."""
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def check_lang(lang: str | None) -> str:
    try:
        return resolve(lang or "en")
    except LanguageError as exc:
        raise LabError(f"lang: {exc}") from None


def bad_request(error: Exception, path: str) -> str:
    """One line for the page, and the same line logged (``lab.bad_request``)."""
    line = str(error).splitlines()[0] if str(error) else type(error).__name__
    _LOG.warning("lab.bad_request", path=path, error=line)
    return line
