"""The language of the views: English or Chinese, through gettext catalogues.

Why gettext: trainers in China teach in the words their audience uses at the counter
(单边账, 冲正, 查询, 对账), and translators work on ``.po`` files, not on Python code.
English is the source language: every message id *is* the English text, so an English
view needs no catalogue. Chinese lives in ``possim/locale/zh/LC_MESSAGES/possim.po``,
compiled to the ``.mo`` next to it (``python -m possim.i18n`` recompiles; a test checks the
``.mo`` is up to date and that every string the views mark has a Chinese entry).

Adding a string: write ``tr("text {name}", name=...)`` in a view (``N_("text")`` for a table
entry translated later), add one ``msgid``/``msgstr`` pair to the ``.po``, recompile.
"""

from __future__ import annotations

import gettext
import os
import tomllib
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from possim.money.money import format_money

LANGS = ("en", "zh")
DOMAIN = "possim"
LOCALE_DIR = Path(__file__).with_name("locale")


#: The recovery policies (``possim.pos_sim.policies``) in words, for views in another language
#: than English (an English view prints the name ``--policy`` takes).
POLICY_WORDS = {"none": "no recovery", "reversal": "automatic reversal", "query": "status query",
                "query-then-reversal": "status query, then reversal"}
#: The policies whose words change for a run of wallet payments only: there the reversal is a cancel (撤销).
WALLET_POLICY_WORDS = {"reversal": "automatic cancel (撤销)", "query-then-reversal": "status query, then cancel (撤销)"}
#: The terminal and host profiles (``--profile``) as people call them: the rules each follows.
PROFILE_WORDS = {"iso": "generic ISO 8583", "cup": "China UnionPay"}


class LanguageError(ValueError):
    """An unknown language name (from ``--lang`` or ``POSSIM_LANG``)."""


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark ``text`` for the catalogue without translating it here (tables built at import time)."""
    return text


def resolve(lang: str | None) -> str:
    """``--lang`` if given, else ``POSSIM_LANG``, else English; ``zh_CN.UTF-8`` style names are accepted."""
    name = lang or os.environ.get("POSSIM_LANG") or "en"
    short = name.split("_")[0].split("-")[0].split(".")[0].lower()
    if short not in LANGS:
        raise LanguageError(f"unknown language {name!r} (choose from {', '.join(LANGS)})")
    return short


@cache
def _catalogue(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang])


class Tr:
    """Translate, format and print money in one language and currency: ``tr("pays {amount}", amount=...)``.

    ``missing`` collects message ids asked for that the catalogue lacks (English needs none):
    the tests render every view in every language and require it to stay empty.
    """

    missing: ClassVar[set[tuple[str, str]]] = set()

    def __init__(self, lang: str = "en", currency: str = "978") -> None:
        self.lang = resolve(lang)
        self.currency = currency
        self._cat = _catalogue(self.lang)

    def __call__(self, msgid: str, /, **values: object) -> str:
        text = self._cat.gettext(msgid)
        if text is msgid and self.lang != "en" and msgid.strip():
            Tr.missing.add((self.lang, msgid))
        return text.format(**values) if values else text

    def plural(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """``singular`` or ``plural`` by ``n`` (gettext's ``ngettext``: Chinese has one form for every count);
        ``n`` is among the values as ``{n}`` unless the caller names it otherwise."""
        text = self._cat.ngettext(singular, plural, n)
        if text in (singular, plural) and self.lang != "en":
            Tr.missing.add((self.lang, singular))
        return text.format(**({"n": n} | values))

    def money(self, amount: int | str | Decimal) -> str:
        """2500, '25.00' or Decimal('25.00') -> '¥25.00' (156, Chinese), '€1,025.00' (978): ``money.format_money``."""
        return format_money(amount, self.currency, self.lang)

    def policy(self, name: str, wallet: bool = False) -> str:
        """A recovery policy as the reader calls it: the name ``--policy`` takes in English, words in Chinese.

        ``wallet``: the run paid by wallet only (``console.wallet_only``), where the reversal is a cancel (撤销)."""
        if self.lang == "en" or name not in POLICY_WORDS:
            return name
        return self(WALLET_POLICY_WORDS[name]) if wallet and name in WALLET_POLICY_WORDS else self(POLICY_WORDS[name])

    def transport(self, name: str) -> str:
        """A transport in the reader's words: the name ``--transport`` takes in English, else the
        words its registry entry gives (``possim.protocol.transports``)."""
        from possim.protocol import transports

        if self.lang == "en" or name not in transports.REGISTRY:
            return name
        return self(transports.REGISTRY.get(name).words)

    def profile(self, name: str) -> str:
        """``iso`` or ``cup`` in the reader's words: the name ``--profile`` takes in English, 中国银联 in Chinese."""
        return name if self.lang == "en" or name not in PROFILE_WORDS else self(PROFILE_WORDS[name])

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"


@cache
def _scenario_texts(lang: str) -> dict[str, dict[str, Any]]:
    path = LOCALE_DIR / lang / "scenarios.toml"
    if lang == "en" or not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def scenario_text(name: str, title: str, description: str, lang: str) -> tuple[str, str]:
    """A scenario's title and description in ``lang`` (``locale/<lang>/scenarios.toml``, by file name).

    Scenario files stay in English, the language their authors write; the translation is used only
    while the scenario's English title is the one it was made from, so an edited scenario is never
    described by a stale translation.
    """
    entry = _scenario_texts(lang).get(name)
    if not entry or entry.get("en") != title:
        return title, description
    return entry["title"], "".join(entry["description"].strip().splitlines())  # Chinese lines join without spaces


def group_text(name: str, group: str, lang: str) -> str:
    """A fleet group's name in ``lang``: the ``groups`` table of the scenario's entry in
    ``locale/<lang>/scenarios.toml`` (by file name), else the name the scenario gives it."""
    groups: dict[str, str] = _scenario_texts(lang).get(name, {}).get("groups", {})
    return str(groups.get(group, group))


def translator(lang: str | None = None, currency: str = "978") -> Tr:
    return Tr(resolve(lang), currency)


def compile_catalogues() -> list[Path]:
    """Compile every ``.po`` under ``possim/locale`` into its ``.mo`` (with Babel)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as f:
            catalog = read_po(f)
        with po.with_suffix(".mo").open("wb") as f:
            write_mo(f, catalog)
        written.append(po.with_suffix(".mo"))
    return written


if __name__ == "__main__":
    for path in compile_catalogues():
        print(f"compiled {path}")
