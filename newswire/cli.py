"""The ``newswire`` command: read what newswire stored, follow it, try the cleaner."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from . import __version__
from .clean import clean_page, clean_response, decode_html
from .cli_args import OneLineParser
from .embedded import RedisServer, lock_data_dir
from .errors import ConfigError, ExtractError, FetchError
from .feeds import load_feeds_file
from .http import PAGE_ACCEPT, Fetcher
from .model import parse_iso
from .opml import parse_opml, plan_import, to_opml, toml_entries
from .process import run_main
from .profiles import profiles_for
from .settings import EMBEDDED_SOCKET, Settings, shipped_feeds_file
from .status import FAILED_SHOWN, snapshot
from .store import Store, connect, ping
from .up import run_up

#: The ``newswire feeds --json`` fields that CONTRACT.md promises, in order.
FEED_FIELDS = ("name", "url", "last_status", "last_success", "next_check", "errors",
               "last_error", "disabled")


def _store(settings: Settings) -> Store:
    if settings.redis_embedded and not (settings.data_dir / EMBEDDED_SOCKET).exists():
        _start_stopped_embedded(settings)
    ping(settings)
    return Store(connect(settings), settings)


def _start_stopped_embedded(settings: Settings) -> None:
    """``newswire up`` ran here and stopped: serve its data for this command only."""
    lock = lock_data_dir(settings.data_dir)
    server = RedisServer(settings.data_dir.resolve(), persist=True).start()

    def stop() -> None:
        server.stop()
        lock.close()

    atexit.register(stop)


def _emit(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()  # line by line, also into a pipe: subscribers read as it comes


# -- recent -------------------------------------------------------------------

def _since(value: str) -> datetime:
    try:
        since = parse_iso(value)
    except ValueError:
        since = None
    if since is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}")
    return since


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value!r}")
    return number


def article_json(article: dict[str, str]) -> dict[str, Any]:
    """An article hash as JSON: empty strings of optional fields become null."""
    data: dict[str, Any] = dict(article)
    for name in ("published", "duplicate_of", "fetch_error", "language", "image"):
        data[name] = data.get(name) or None
    data["authors"] = [a for a in (data.get("authors") or "").split(", ") if a]
    return data


def cmd_recent(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    store = _store(settings)
    if args.feed:
        names = {f.name for f in load_feeds_file(settings.feeds_path)}
        if args.feed not in names and not store.feed_state(args.feed):
            raise ConfigError(f"unknown feed {args.feed!r} (see newswire feeds)")
    articles = store.recent(limit=args.limit, feed=args.feed, since=args.since)
    for article in articles:
        if args.json:
            _emit(out, json.dumps(article_json(article), ensure_ascii=False))
        else:
            link = "same story as" if article.get("method") == "story" else "duplicate of"
            mark = f"  ({link} {article['duplicate_of']})" if article.get(
                "duplicate_of") else ""
            _emit(out, f"{article.get('published', '')}  [{article.get('feed', '')}]  "
                       f"{article.get('title', '')}  {article.get('url', '')}{mark}")
    return 0


# -- subscribe ----------------------------------------------------------------

def cmd_subscribe(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    store = _store(settings)
    if args.from_start:
        after = "0-0"
    elif args.from_id:
        after = args.from_id
    else:
        after = store.last_stream_id()
    if args.from_id and (oldest := store.trimmed_after(after)):
        print(f"newswire: warning: the stream's cap (NEWSWIRE_STREAM_MAXLEN) removed entries "
              f"older than {oldest}; those after {after} are missed; going on from {oldest}",
              file=sys.stderr)
    wait = 0.5
    while True:
        try:
            entries = store.read_stream(after, block_ms=args.block_ms, count=100)
        except redis.ConnectionError as e:
            # Redis restarting: wait and go on from the last entry shown, missing nothing.
            print(f"newswire: warning: Redis unavailable ({e}); retrying", file=sys.stderr)
            time.sleep(wait)
            wait = min(wait * 2, 30.0)
            continue
        wait = 0.5
        if not entries and args.exit_when_idle:
            return 0
        for entry_id, fields in entries:
            after = entry_id
            if fields.get("type") != "new" and not args.all:
                continue
            if args.json:
                _emit(out, json.dumps({"stream_id": entry_id, **fields}, ensure_ascii=False))
            else:
                _emit(out, f"{entry_id}  {fields.get('published', '')}  [{fields.get('feed', '')}]"
                           f"  {fields.get('title', '')}  {fields.get('url', '')}")


def _stream_id(value: str) -> str:
    head, _, tail = value.partition("-")
    if not head.isdigit() or (tail and not tail.isdigit()):
        raise argparse.ArgumentTypeError(f"not a stream id (like 1700000000000-0): {value!r}")
    return value


# -- extract ------------------------------------------------------------------

def extract_source(
    source: str, fetcher: Callable[[], Fetcher], settings: Settings, store: Store | None = None
) -> dict[str, Any]:
    """Clean one URL or HTML file exactly as the worker would (with ``store``: also
    without the site's learned boilerplate, read from Redis, which is not changed)."""
    profiles = profiles_for(settings.profiles_dir)
    if source.startswith(("http://", "https://")):
        response = fetcher().get(source, max_bytes=settings.page_max_bytes, accept=PAGE_ACCEPT)
        article = clean_response(response, profiles=profiles)
    else:
        path = Path(source)
        try:
            html = decode_html(path.read_bytes())
        except OSError as e:
            raise ExtractError(f"cannot read {source}: {e.strerror or e}") from e
        cleaned = clean_page(html, profiles=profiles)
        if cleaned is None:
            raise ExtractError(f"{source}: no article text found")
        article = cleaned
    learned_removed = 0
    if store is not None:
        learned, _, _ = store.without_learned(article)
        learned_removed = len(article.paragraphs) - len(learned.paragraphs)
        article = learned
    return {"input": source, **article.to_json(), "learned_removed": learned_removed}


def cmd_extract(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    made: list[Fetcher] = []

    def fetcher() -> Fetcher:
        if not made:
            made.append(Fetcher(settings))
        return made[0]

    store = _store(settings) if args.learned else None
    failures = 0
    for source in args.sources:
        try:
            data = extract_source(source, fetcher, settings, store)
        except (ExtractError, FetchError) as e:
            failures += 1
            print(f"newswire: error: {e}", file=sys.stderr)
            if args.json:
                _emit(out, json.dumps({"input": source, "error": str(e), "title": None,
                                       "text": None, "published": None}, ensure_ascii=False))
            continue
        if args.json:
            _emit(out, json.dumps(data, ensure_ascii=False))
        else:
            _emit(out, f"# {data['title']}\n")
            if data["published"]:
                _emit(out, f"published: {data['published']}\n")
            _emit(out, "\n\n".join(data["text"].split("\n")) + "\n")
    for f in made:
        f.close()
    return 1 if failures else 0


# -- feeds --------------------------------------------------------------------

def feed_status(name: str, config_url: str, state: dict[str, str]) -> dict[str, Any]:
    """One feed's polling state as CONTRACT.md describes it."""
    same = state.get("config_url") == config_url
    errors = state.get("errors") or "0"
    return {
        "name": name,
        "url": (state.get("url") if same else None) or config_url,
        "last_status": int(state["last_status"]) if same and state.get("last_status") else None,
        "last_success": (state.get("last_success") or None) if same else None,
        "next_check": (state.get("next_check") or None) if same else None,
        "errors": int(errors) if same and errors.isdigit() else 0,
        "last_error": (state.get("last_error") or None) if same else None,
        "disabled": same and state.get("disabled") == "1",
        # Beyond CONTRACT.md: the wait in force before next_check, and why.
        "interval": int(state["interval"]) if same and state.get("interval", "").isdigit()
        else None,
        "next_check_reason": (state.get("reason") or None) if same else None,
        "moving_to": (state.get("moved_to") or None) if same else None,
    }


def cmd_feeds(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if getattr(args, "feeds_command", None) == "import":
        return cmd_feeds_import(args, settings, out)
    if getattr(args, "feeds_command", None) == "export":
        return cmd_feeds_export(args, settings, out)
    feeds = load_feeds_file(settings.feeds_path)
    store = _store(settings)
    states = store.feed_states([f.name for f in feeds])
    for feed in feeds:
        status = feed_status(feed.name, feed.url, states[feed.name])
        if args.json:
            _emit(out, json.dumps(status, ensure_ascii=False))
            continue
        state = "disabled" if status["disabled"] else (
            f"{status['errors']} errors" if status["errors"] else "ok")
        if status["last_status"] is None and not status["errors"]:
            state = "never polled"
        why = (f" ({status['next_check_reason']}, {status['interval']} s)"
               if status["next_check_reason"] else "")
        _emit(out, f"{feed.name:<20} {state:<12} last {status['last_status'] or '-':<4} "
                   f"next {status['next_check'] or 'now':<20}{why} {status['url']}"
                   + (f"\n{'':<20} last error: {status['last_error']}" if status["last_error"]
                      else ""))
    return 0


def _import_target(settings: Settings, cwd: Path) -> tuple[Path, str]:
    """The feeds file an import writes to, and its text so far. The shipped file is
    never written: its feeds are copied into ./feeds.toml, which then replaces it."""
    if settings.feeds_path.resolve() == shipped_feeds_file().resolve():
        target = cwd / "feeds.toml"
        return target, shipped_feeds_file().read_text(encoding="utf-8")
    target = settings.feeds_path
    try:
        return target, target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read feeds file {target}: {e}") from e


def cmd_feeds_import(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    source = Path(args.file)
    try:
        data = source.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {source}: {e.strerror or e}") from e
    outlines = parse_opml(data, source=str(source))
    target, text = _import_target(settings, Path.cwd())
    existing = load_feeds_file(target) if text else []
    added, skipped = plan_import(existing, outlines)
    for reason in skipped:
        print(f"newswire: skipped {reason}", file=sys.stderr)
    if added and not args.dry_run:
        joined = text.rstrip("\n") + ("\n\n" if text.strip() else "") + toml_entries(added)
        temp = target.with_name(f".{target.name}.import")
        try:
            temp.write_text(joined, encoding="utf-8")
            load_feeds_file(temp)  # what is written must read back as a valid feeds file
            temp.replace(target)  # atomic: a running scheduler never sees half of it
        except OSError as e:
            raise ConfigError(f"cannot write feeds file {target}: {e.strerror or e}") from e
        finally:
            temp.unlink(missing_ok=True)
    verb = "would add" if args.dry_run else "added"
    _emit(out, f"{verb} {len(added)} feeds to {target}, skipped {len(skipped)}")
    for feed in added:
        _emit(out, f"  {feed.name:<24} {feed.url}")
    return 0


def cmd_feeds_export(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    feeds = load_feeds_file(settings.feeds_path)
    urls = {f.name: f.url for f in feeds}
    if args.current:
        states = _store(settings).feed_states(list(urls))
        urls = {f.name: feed_status(f.name, f.url, states[f.name])["url"] for f in feeds}
    out.write(to_opml(urls.items()).decode("utf-8"))
    out.flush()
    return 0


# -- status and up -----------------------------------------------------------

def cmd_status(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    feeds = load_feeds_file(settings.feeds_path)
    store = _store(settings)
    snap = snapshot(store.redis, settings, [f.name for f in feeds], failed_shown=FAILED_SHOWN)
    if args.json:
        _emit(out, json.dumps({"redis": settings.redis_url_redacted, "feeds": len(feeds),
                               **snap.to_json()}))
        return 0
    rows = [
        ("redis", settings.redis_url_redacted + (" (embedded)" if settings.redis_embedded else "")),
        ("feeds", f"{len(feeds)} configured, {snap.feeds_failing} failing, "
                  f"{snap.feeds_disabled} disabled"),
        ("polls", f"{snap.feeds_polled} ({snap.not_modified} not modified, "
                  f"{snap.feed_errors} errors)"),
        ("articles", f"{snap.articles} stored: {snap.new_stories} new stories, "
                     f"{snap.duplicates} duplicates; {snap.recent} in news:recent"),
        ("jobs", f"{snap.queued} queued, {snap.running} running, {snap.scheduled} waiting "
                 f"to retry, {snap.failed} failed"),
        ("workers", str(snap.workers)),
    ]
    for name, value in rows:
        _emit(out, f"{name:<9} {value}")
    if snap.failed_jobs:
        _emit(out, f"failed jobs (newest {len(snap.failed_jobs)} of {snap.failed}; "
                   "`newswire retry --all` runs them again):")
        for job in snap.failed_jobs:
            _emit(out, f"  {job.failed_at or '-':<20} {job.id}  {job.url}")
            _emit(out, f"  {'':<20} {job.reason}")
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Put failed article jobs back on the queue (RQ's own requeue: the job keeps its
    id, so the commit's idempotence holds)."""
    store = _store(settings)
    registry = FailedJobRegistry(
        queue=Queue(settings.queue_name, connection=store.redis, serializer=JSONSerializer))
    ids = registry.get_job_ids() if args.all else args.jobs
    unknown = [job_id for job_id in ids if job_id not in registry]
    if unknown:
        raise ConfigError(f"no failed job {', '.join(unknown)}")
    for job_id in ids:
        registry.requeue(job_id)
    _emit(out, f"requeued {len(ids)} failed job{'' if len(ids) == 1 else 's'}")
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    return run_up(settings, workers=args.workers, env=dict(os.environ),
                  interactive=sys.stderr.isatty())


# -- main ---------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="newswire", description="Streaming news ingestion on Redis.")
    parser.add_argument("--version", action="version", version=f"newswire {__version__}")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=OneLineParser)

    recent = commands.add_parser("recent", help="recent stored articles, newest first")
    recent.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    recent.add_argument("--feed", help="only articles of this feed")
    recent.add_argument("--since", type=_since, help="only articles published since (ISO 8601)")
    recent.add_argument("--json", action="store_true", help="one JSON object per line")
    recent.set_defaults(handler=cmd_recent)

    subscribe = commands.add_parser("subscribe", help="follow new stories as they are stored")
    subscribe.add_argument("--json", action="store_true", help="one JSON object per line")
    start = subscribe.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true", help="from the oldest kept entry")
    start.add_argument("--from", dest="from_id", type=_stream_id, metavar="ID",
                       help="from after this stream id (as printed), missing nothing")
    subscribe.add_argument("--all", action="store_true",
                           help="duplicates too, not only new stories")
    subscribe.add_argument("--exit-when-idle", action="store_true",
                           help="exit once caught up and nothing arrives for --block-ms")
    subscribe.add_argument("--block-ms", type=_positive, default=5000, help=argparse.SUPPRESS)
    subscribe.set_defaults(handler=cmd_subscribe)

    extract = commands.add_parser("extract", help="print the cleaned article of a URL or file")
    extract.add_argument("--json", action="store_true", help="one JSON object per SOURCE")
    extract.add_argument(
        "--learned", action="store_true",
        help="also drop the boilerplate learned from each site (reads Redis, changes nothing)",
    )
    extract.add_argument("sources", nargs="+", metavar="SOURCE", help="article URL or HTML file")
    extract.set_defaults(handler=cmd_extract)

    feeds = commands.add_parser("feeds", help="the configured feeds and their polling state")
    feeds.add_argument("--json", action="store_true", help="one JSON object per feed")
    feeds.set_defaults(handler=cmd_feeds, feeds_command=None)
    feeds_commands = feeds.add_subparsers(dest="feeds_command", metavar="ACTION",
                                          parser_class=OneLineParser)
    feeds_import = feeds_commands.add_parser(
        "import", help="add the feeds of an OPML file to the feeds file")
    feeds_import.add_argument("file", metavar="FILE.opml", help="OPML file to read")
    feeds_import.add_argument("--dry-run", action="store_true",
                              help="say what would be added, change nothing")
    feeds_export = feeds_commands.add_parser(
        "export", help="print the configured feeds as OPML")
    feeds_export.add_argument(
        "--current", action="store_true",
        help="each feed's current URL (after a confirmed permanent redirect; reads Redis)")

    status = commands.add_parser("status", help="what newswire is doing, once")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=cmd_status)

    retry = commands.add_parser("retry", help="run failed article jobs again")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every job in the failed registry")
    which.add_argument("jobs", nargs="*", default=[], metavar="JOB",
                       help="job ids, as `newswire status` lists them")
    retry.set_defaults(handler=cmd_retry)

    up = commands.add_parser("up", help="Redis, the scheduler and workers on this machine")
    up.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                    help="worker processes (default: CPU count)")
    up.set_defaults(handler=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body(settings: Settings) -> int:
        try:
            return int(args.handler(args, settings, sys.stdout))
        except BrokenPipeError:  # `newswire recent | head`
            sys.stderr.close()
            return 0

    return run_main(body, prog="newswire", json_logs=args.log_json)




if __name__ == "__main__":
    sys.exit(main())
