"""Site profiles: small declarative files that say what to cut from one site's pages.

A profile is a TOML file; the ones shipped in ``newswire/data/profiles/`` are
read first, then every ``*.toml`` in the user's folder (``NEWSWIRE_PROFILES``,
default ``./profiles``). A user file with the same name as a shipped one
replaces it. The format::

    name = "The Moscow Times"
    domains = ["themoscowtimes.com"]        # registered domains (subdomains match)
    site_names = ["The Moscow Times"]       # og:site_name, for pages read from a file
    body = ["div.article__content"]         # CSS: the article container, first match wins
    drop = [".contribute-block"]            # CSS: elements removed before extraction
    drop_lines = ['^Read more:']            # regex: paragraphs removed after extraction
    [[drop_runs]]                           # regex: a run of paragraphs, start to end
    start = '^A Message from The Moscow Times'
    end = '^Remind me later'                # or count = N: the N paragraphs after start;
                                            # with neither, to the end of the text

Regexes are Python's, matched case-insensitively with ``search``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from lxml.cssselect import CSSSelector, SelectorError

from .boilerplate import LineRules, Run
from .errors import ConfigError

_KEYS = frozenset({"name", "domains", "site_names", "body", "drop", "drop_lines", "drop_runs"})
_RUN_KEYS = frozenset({"start", "end", "count"})


@dataclass(frozen=True)
class SiteProfile:
    """One site's rules, compiled."""

    name: str
    domains: tuple[str, ...] = ()
    site_names: tuple[str, ...] = ()
    body: tuple[CSSSelector, ...] = ()
    drop: tuple[CSSSelector, ...] = ()
    lines: LineRules = field(default_factory=LineRules)
    source: str = ""


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _selector(text: str, where: str) -> CSSSelector:
    try:
        return CSSSelector(text)
    except SelectorError as e:
        raise ConfigError(f"{where}: bad CSS selector {text!r}: {e}") from e


def _regex(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as e:
        raise ConfigError(f"{where}: bad regular expression {text!r}: {e}") from e


def parse_profile(text: str, where: str) -> SiteProfile:
    """Compile one profile file's text; ``where`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    runs = data.get("drop_runs", [])
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("start"), str) and set(r) <= _RUN_KEYS
        and isinstance(r.get("end", ""), str)
        and isinstance(r.get("count", 0), int) and r.get("count", 0) >= 0
        and not ("end" in r and "count" in r)
        for r in runs
    ):
        raise ConfigError(
            f"{where}: drop_runs must be tables with start, and end or count (not both)"
        )
    domains = tuple(d.lower().strip(".") for d in _strings(data, "domains", where))
    site_names = tuple(n.casefold() for n in _strings(data, "site_names", where))
    if not domains and not site_names:
        raise ConfigError(f"{where}: a profile needs domains or site_names")
    return SiteProfile(
        name=str(data.get("name") or Path(where).stem),
        domains=domains,
        site_names=site_names,
        body=tuple(_selector(s, where) for s in _strings(data, "body", where)),
        drop=tuple(_selector(s, where) for s in _strings(data, "drop", where)),
        lines=LineRules(
            drop=tuple(_regex(p, where) for p in _strings(data, "drop_lines", where)),
            runs=tuple(
                Run(
                    start=_regex(r["start"], where),
                    end=_regex(r["end"], where) if r.get("end") else None,
                    count=r.get("count"),
                )
                for r in runs
            ),
        ),
        source=where,
    )


@dataclass(frozen=True)
class Profiles:
    """The profiles in force, looked up by a page's domain or site name."""

    profiles: tuple[SiteProfile, ...] = ()

    def match(self, domain: str = "", site_name: str = "") -> SiteProfile | None:
        domain = domain.lower()
        for profile in self.profiles:
            if any(domain == d or domain.endswith("." + d) for d in profile.domains):
                return profile
        name = " ".join(site_name.split()).casefold()
        if name:
            for profile in self.profiles:
                if name in profile.site_names:
                    return profile
        return None


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def load_profiles(folders: Sequence[Path]) -> Profiles:
    """Profiles from ``folders`` in order; a later file replaces an earlier one of the same name."""
    by_name: dict[str, SiteProfile] = {}
    for folder in folders:
        for path in _files(folder):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read site profile {path}: {e}") from e
            by_name[path.stem] = parse_profile(text, str(path))
    return Profiles(tuple(by_name.values()))


@lru_cache(maxsize=1)
def shipped_profiles_dir() -> Path:
    return Path(str(files("newswire") / "data" / "profiles"))


@lru_cache(maxsize=8)
def _cached(user_dir: Path | None, stamp: tuple[tuple[str, float], ...]) -> Profiles:
    return load_profiles((shipped_profiles_dir(),) + ((user_dir,) if user_dir else ()))


def profiles_for(user_dir: Path | None) -> Profiles:
    """The shipped profiles plus the user's, re-read when a file of the user's changes
    (the shipped ones change only with the package: they are read once)."""
    stamp = tuple(_stamp((user_dir,) if user_dir else ()))
    return _cached(user_dir, stamp)


def _stamp(folders: Iterable[Path]) -> Iterable[tuple[str, float]]:
    for folder in folders:
        for path in _files(folder):
            try:
                yield str(path), path.stat().st_mtime
            except OSError:
                yield str(path), -1.0
