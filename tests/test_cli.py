"""The newswire command: one readable line for every bad input, never a traceback."""

from __future__ import annotations

import json

import pytest

from .conftest import DATA, Runner, Site, write_feeds


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [("recent", "--bogus"), ("recent", "--limit", "0"), ("recent", "--since", "yesterday"),
     ("subscribe", "--from", "not-an-id"), ("subscribe", "--from-start", "--from", "1-0"),
     ("nosuchcommand",), ()],
)
def test_bad_flags(run: Runner, args: tuple[str, ...]) -> None:
    line = one_line_error(run.newswire(*args))
    assert line.startswith("newswire") and ": error: " in line


def test_redis_unreachable(run: Runner) -> None:
    run.env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    write_feeds(run.cwd / "feeds.toml", {"a": "https://a.example/feed"})
    for command in (("recent",), ("feeds",), ("subscribe",)):
        assert "cannot reach Redis" in one_line_error(run.newswire(*command))
    for module in ("scheduler", "worker"):
        result = run("-m", module, "--once" if module == "scheduler" else "--burst")
        assert "cannot reach Redis" in one_line_error(result)


def test_bad_redis_url(run: Runner) -> None:
    run.env["REDIS_URL"] = "http://localhost:6379"
    assert "REDIS_URL" in one_line_error(run.newswire("recent"))


def test_unreadable_feeds_file(run: Runner) -> None:
    run.env["NEWSWIRE_FEEDS"] = str(run.cwd / "missing.toml")
    assert "cannot read feeds file" in one_line_error(run.newswire("feeds"))
    assert "cannot read feeds file" in one_line_error(run("-m", "scheduler", "--once"))
    (run.cwd / "bad.toml").write_text("[[feeds]\n")
    run.env["NEWSWIRE_FEEDS"] = str(run.cwd / "bad.toml")
    assert "not valid TOML" in one_line_error(run.newswire("feeds"))


def test_unknown_feed(run: Runner) -> None:
    write_feeds(run.cwd / "feeds.toml", {"a": "https://a.example/feed"})
    assert "unknown feed 'zzz'" in one_line_error(run.newswire("recent", "--feed", "zzz"))


def test_feeds_before_any_poll(run: Runner) -> None:
    write_feeds(run.cwd / "feeds.toml", {"a": "https://a.example/feed"})
    result = run.newswire("feeds", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "a", "url": "https://a.example/feed", "last_status": None, "last_success": None,
        "next_check": None, "errors": 0, "last_error": None, "disabled": False,
        "interval": None, "next_check_reason": None, "moving_to": None}


def test_extract_files_and_urls_in_order(run: Runner, site: Site) -> None:
    site.serve("/a", "pages/tj-leaders-agree.html", "text/html; charset=utf-8")
    page = DATA / "pages" / "mt-ruble-steadies.html"
    result = run.newswire("extract", "--json", str(page), site.url("/a"))
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    for data in (first, second):
        assert data["title"] and data["text"] and "published" in data
    assert first["input"] == str(page) and second["input"] == site.url("/a")
    assert first["source"] == second["source"] == "page"


def test_extract_reports_each_bad_source_and_goes_on(run: Runner, site: Site) -> None:
    page = DATA / "pages" / "mt-ruble-steadies.html"
    result = run.newswire("extract", "--json", str(run.cwd / "missing.html"), site.url("/gone"),
                          str(page))
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [bool(r.get("error")) for r in rows] == [True, True, False]
    assert rows[2]["text"]
    assert len(result.stderr.strip().splitlines()) == 2


def test_extract_refuses_private_addresses_by_default(run: Runner, site: Site) -> None:
    site.serve("/a", "pages/tj-leaders-agree.html", "text/html")
    del run.env["NEWSWIRE_ALLOW_PRIVATE_NETWORKS"]
    assert "non-public address" in one_line_error(run.newswire("extract", site.url("/a")))
    assert site.hits("/a") == []
