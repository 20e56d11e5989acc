"""The Redis adapter: connection, the commit script and the reads the CLI needs.

Key names and Lua live in :mod:`newswire.schema`; this module only runs them.
"""

from __future__ import annotations

from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from .dedup import (
    MIN_SHARED_TERMS,
    Candidate,
    Decision,
    Probe,
    decide,
    probe,
)
from .errors import StoreError
from .model import ArticleRecord, CleanedArticle, CommitResult, FeedEntry, parse_iso
from .schema import COMMIT_ARTICLE, FEED_STATES, MARK_SEEN, SAVE_FEED_STATES, Keys
from .settings import Settings
from .siteblocks import block_ids, drop_learned
from .stories import StoryThresholds

#: Proposals retried when other workers keep indexing matching articles meanwhile
#: (besides the commit script's first call, which finds the candidates).
COMMIT_ATTEMPTS = 10
#: Block ids of sites' learned boilerplate a store remembers between commits, in all
#: (about 100 bytes each): past it, the sites least recently changed are forgotten.
LEARNED_BLOCKS_MAX = 65_536


def connect(settings: Settings) -> redis.Redis:
    """A client with its own pool for this process; it reconnects by itself.

    Responses stay bytes (RQ needs that); :class:`Store` decodes what it reads.
    """
    try:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=5,
            # redis-py 8 reads with a 5 s timeout by default: shorter than the
            # blocking reads of `newswire subscribe` (XREAD BLOCK 5000), which then
            # timed out and retried forever. RQ sets its own for its blocking pops.
            socket_timeout=30,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
    except ValueError as e:
        raise StoreError(f"invalid REDIS_URL {settings.redis_url_redacted!r}: {e}") from e
    return client


def ping(settings: Settings) -> None:
    """Raise :class:`StoreError` with a readable line when Redis can't be reached.

    One try on a connection of its own: at start-up a wrong address should fail
    at once, not after the pool's reconnect back-off meant for a running process.
    """
    try:
        with redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5) as probe:
            probe.ping()
    except (redis.RedisError, ValueError) as e:
        raise StoreError(f"cannot reach Redis at {settings.redis_url_redacted}: {e}") from e


def decoded(value: Any) -> str:
    """A reply value as text ('' for none): responses stay bytes for RQ's sake."""
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


T = TypeVar("T")


def _thousands(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` a thousand at a time: the most one script call takes, so that it holds
    Redis for a few milliseconds at most."""
    return (items[i:i + 1000] for i in range(0, len(items), 1000))


def _stream_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis or 0), int(seq or 0)


def _result(raw: Sequence[Any]) -> CommitResult:
    kind, article_id, story, duplicate_of, method, stream_id, similarity = (
        decoded(v) for v in raw)
    return CommitResult(kind, article_id, story, duplicate_of, method, stream_id, similarity)


def _words(value: bytes | None) -> frozenset[str] | None:
    """A stored space-separated set (None when the field is not there)."""
    return None if value is None else frozenset(decoded(value).split())


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {decoded(k): decoded(v) for k, v in raw.items()}


class Store:
    """newswire's reads and writes against one Redis."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._commit = client.register_script(COMMIT_ARTICLE)
        self._mark_seen = client.register_script(MARK_SEEN)
        self._feed_states = client.register_script(FEED_STATES)
        self._save_feed_states = client.register_script(SAVE_FEED_STATES)
        #: Each site's learned boilerplate (block ids) as the commit script last found
        #: it on the blocks of a page, for :meth:`without_learned`.
        self._learned: dict[str, frozenset[str]] = {}
        self._learned_count = 0  # block ids in _learned, in all

    # -- articles ---------------------------------------------------------------

    def commit(
        self, record: ArticleRecord, now: datetime, *,
        rebuild: Callable[[], ArticleRecord] | None = None,
    ) -> CommitResult:
        """Decide new or duplicate (same URL, same text, same article edited, same
        story retold), store, index and announce: the decision and every write are one
        atomic script. Its first call stores an article that has no near-duplicate or
        story candidate; one that has gets them back to verify here, and the next call
        proposes the match (see ``COMMIT_ARTICLE``).

        With ``rebuild``, the script also checks the record's ``learned_blocks``
        against the site's counts; when they differ, it answers with the true ones,
        which this store remembers, and ``rebuild`` makes the record again (from
        :meth:`without_learned` with ``remembered``)."""
        return self.start_commit(record, now, rebuild=rebuild).result()

    def start_commit(
        self, record: ArticleRecord, now: datetime, *,
        rebuild: Callable[[], ArticleRecord] | None = None,
    ) -> Commit:
        """:meth:`commit` in steps (:class:`Commit`): the script's first call goes out
        with :meth:`Commit.send`, the next with :meth:`Commit.advance`, and
        :meth:`Commit.result` ends it."""
        return Commit(self, record, now, rebuild)

    def load(self, records: Sequence[ArticleRecord], now: datetime) -> list[CommitResult]:
        """Store many articles in one pipelined round trip, indexed like :meth:`commit`
        but with no near-duplicate or story lookup (exact matches still apply). For
        bulk imports and the benchmarks, whose decisions are known beforehand."""
        pipe = self.redis.pipeline(transaction=False)
        for record in records:
            article = probe(record.id, record.text, parse_iso(record.published) or now)
            self._run_commit(record, article, now, set(), Decision(), "", check=False, client=pipe)
        return [_result(raw) for raw in pipe.execute()]

    def verify(self, article: Probe, reply: Sequence[Any]) -> tuple[set[str], Decision, str]:
        """Verify the candidates of a ``retry`` reply of the commit script: the next
        call's answer to it (every id that could match, the proposed match, the stream id
        the candidates were read at). The reply holds them all (band members and posting
        members), the best of each kind (``NEWSWIRE_DEDUP_CANDIDATES``) and those ones'
        text, publication time, entities and figures. Its cost is bounded by the bucket
        cap and candidate limit, not by how many articles are stored."""
        near_raw, story_raw, read_at, near_ids, story_ids, fetched = reply[7:13]
        seen = {decoded(m) for m in near_raw[::2]} | {decoded(m) for m in story_raw[::2]}
        candidates: dict[str, Candidate] = {}
        for i in range(0, len(fetched), 5):
            cid, text, when, names, figures = fetched[i:i + 5]
            candidates[decoded(cid)] = Candidate(decoded(cid), decoded(text), decoded(when),
                                                 _words(names), _words(figures))
        decision = decide(
            article, candidates, [decoded(c) for c in near_ids], [decoded(c) for c in story_ids],
            neardup_threshold=self.settings.neardup_threshold,
            containment_threshold=self.settings.neardup_containment,
            thresholds=StoryThresholds(score=self.settings.story_threshold,
                                       window_hours=self.settings.story_window_hours),
        )
        return seen, decision, decoded(read_at)

    def _run_commit(
        self, record: ArticleRecord, article: Probe, now: datetime, seen: set[str],
        decision: Decision, read_at: str, *, check: bool, check_learned: bool = False,
        client: Any = None,
    ) -> Any:
        """The commit script's reply (or, given a pipeline, the pipeline)."""
        keys, args = self._commit_call(record, article, now, seen, decision, read_at,
                                       check=check, check_learned=check_learned)
        return self._commit(keys=keys, args=args, client=client)

    def _commit_call(
        self, record: ArticleRecord, article: Probe, now: datetime, seen: set[str],
        decision: Decision, read_at: str, *, check: bool, check_learned: bool,
    ) -> tuple[list[str], list[Any]]:
        """The commit script's keys and arguments (see ``COMMIT_ARTICLE``): ``seen``,
        ``decision`` and ``read_at`` answer the candidates of a ``retry`` reply (empty on a
        first call)."""
        flat: list[str] = []
        for name, value in record.fields().items():
            flat += [name, value]
        # What a later article's story verification reads instead of finding them anew.
        flat += ["entities", " ".join(sorted(article.names)),
                 "figures", " ".join(sorted(article.figures))]
        page_url = record.page_canonical_url or record.canonical_url
        return (
            [
                self.keys.article(record.id),
                self.keys.url(record.canonical_url),
                self.keys.url(page_url),
                self.keys.fingerprint(record.fingerprint),
                self.keys.recent,
                self.keys.stream,
                self.keys.stats,
                self.keys.expiry,
                self.keys.site(record.site),
                *(self.keys.band(b) for b in article.bands),
                *(self.keys.term(t) for t in article.terms),
            ],
            [
                record.id,
                int(article.published.timestamp()),
                self.settings.retention_seconds,
                self.settings.stream_maxlen,
                self.keys.new_channel,
                int(now.timestamp()),
                self.keys.article(""),
                " ".join(sorted(set(record.blocks) - {""})) if record.site else "",
                self.settings.site_blocks_max,
                len(article.bands),
                len(article.terms),
                " ".join(sorted(seen)),
                MIN_SHARED_TERMS,
                "1" if check else "0",
                self.settings.index_bucket_max,
                decision.near_id,
                f"{decision.near_similarity:.3f}" if decision.near_id else "",
                decision.story_id,
                f"{decision.story_score:.3f}" if decision.story_id else "",
                decision.evidence,
                self.settings.boilerplate_min_pages if check_learned else 0,
                " ".join(record.learned_blocks),
                read_at,
                self.settings.dedup_candidates,
                *flat,
            ],
        )

    def block_counts(self, site: str, blocks: Sequence[str]) -> list[int]:
        """How many of the site's stored pages had each block (0 for '' or unknown)."""
        if not site or not any(blocks):
            return [0] * len(blocks)
        values = self.redis.hmget(self.keys.site(site), [b or "-" for b in blocks])
        return [int(v) if v is not None and b else 0 for b, v in zip(blocks, values, strict=True)]

    def without_learned(
        self, cleaned: CleanedArticle, *, remembered: bool = False
    ) -> tuple[CleanedArticle, tuple[str, ...], tuple[str, ...]]:
        """The article without its site's learned boilerplate: (that article, the ids
        of its paragraphs as they were, which the commit counts for the site, the ids
        among them taken as learned). The learned ids are read from Redis, or with
        ``remembered`` taken from what this store last saw there: no round trip, and
        the commit script checks them (see :meth:`commit`)."""
        if cleaned.source != "page" or not cleaned.site:
            return cleaned, (), ()
        blocks = block_ids(cleaned.paragraphs)
        min_pages = self.settings.boilerplate_min_pages
        if min_pages <= 0:
            learned: Collection[str] = ()
        elif remembered:
            learned = self._learned.get(cleaned.site, frozenset()).intersection(blocks)
        else:
            counts = self.block_counts(cleaned.site, blocks)
            learned = {b for b, n in zip(blocks, counts, strict=True) if n >= min_pages}
        kept = drop_learned(cleaned.paragraphs, blocks, learned)
        return replace(cleaned, paragraphs=kept), blocks, tuple(sorted(learned))

    def _remember_learned(self, site: str, blocks: Sequence[str], learned: Iterable[str]) -> None:
        """What the commit script found of ``blocks``: the ``learned`` ones are the
        site's boilerplate, the others not."""
        known = self._learned.pop(site, frozenset())
        self._learned_count -= len(known)
        updated = known.difference(blocks).union(decoded(b) for b in learned)
        if len(updated) > LEARNED_BLOCKS_MAX:
            return  # not remembered: each of its pages takes the script's second call
        while self._learned_count + len(updated) > LEARNED_BLOCKS_MAX:
            oldest = next(iter(self._learned))  # the site least recently changed
            self._learned_count -= len(self._learned.pop(oldest))
        self._learned[site] = updated
        self._learned_count += len(updated)

    def stored_id(self, canonical_url: str) -> str | None:
        """The id of the article stored for this canonical URL, if any."""
        return self.stored_ids([canonical_url])[0]

    def stored_ids(self, canonical_urls: Sequence[str]) -> list[str | None]:
        """:meth:`stored_id` of each URL, in one round trip."""
        values = self.redis.mget([self.keys.url(u) for u in canonical_urls])
        return [decoded(v) or None for v in values]

    def article(self, article_id: str) -> dict[str, str]:
        return decode_hash(self.redis.hgetall(self.keys.article(article_id)))

    def recent(
        self, *, limit: int, feed: str | None = None, since: datetime | None = None
    ) -> list[dict[str, str]]:
        """Stored articles, newest first, optionally of one feed and since a time."""
        low = since.timestamp() if since else "-inf"
        found: list[dict[str, str]] = []
        offset, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = self.redis.zrevrangebyscore(self.keys.recent, "+inf", low, start=offset, num=page)
            if not ids:
                break
            offset += len(ids)
            pipe = self.redis.pipeline(transaction=False)
            for raw_id in ids:
                pipe.hgetall(self.keys.article(decoded(raw_id)))
            for raw in pipe.execute():
                article = decode_hash(raw)
                if article and (feed is None or article.get("feed") == feed):
                    found.append(article)
                    if len(found) == limit:
                        break
        return found

    def read_stream(
        self, after: str, *, block_ms: int | None, count: int = 100
    ) -> list[tuple[str, dict[str, str]]]:
        """Stream entries after ``after`` (exclusive), waiting up to ``block_ms``."""
        reply: Any = self.redis.xread({self.keys.stream: after}, count=count, block=block_ms)
        entries: list[tuple[str, dict[str, str]]] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                entries.append((decoded(entry_id), decode_hash(fields)))
        return entries

    def trimmed_after(self, after: str) -> str:
        """The oldest entry id the stream still holds, when its cap has removed older
        entries and ``after`` is older than it (a subscriber resuming from ``after``
        may have missed entries), else ''."""
        try:
            info: Any = self.redis.xinfo_stream(self.keys.stream)
        except redis.ResponseError:
            return ""  # no stream yet
        first = info.get("first-entry")
        trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        if not first or not trimmed:
            return ""
        oldest = decoded(first[0])
        return oldest if _stream_key(after) < _stream_key(oldest) else ""

    def last_stream_id(self) -> str:
        """The newest stream id, or "0-0" for an empty stream."""
        last = self.redis.xrevrange(self.keys.stream, count=1)
        return decoded(last[0][0]) if last else "0-0"

    # -- entries seen by the scheduler -------------------------------------------

    def unseen(self, entries: Sequence[FeedEntry]) -> list[FeedEntry]:
        """Entries whose canonical URL and guid were never enqueued nor stored."""
        if not entries:
            return []
        keys: list[str] = []
        for entry in entries:
            keys += [
                self.keys.seen_url(entry.canonical_url),
                self.keys.seen_guid(entry.guid),
                self.keys.url(entry.canonical_url),
            ]
        values = self.redis.mget(keys)
        fresh: list[FeedEntry] = []
        batch_urls: set[str] = set()
        for i, entry in enumerate(entries):
            if any(values[3 * i: 3 * i + 3]) or entry.canonical_url in batch_urls:
                continue
            batch_urls.add(entry.canonical_url)
            fresh.append(entry)
        return fresh

    def mark_seen(self, entries: Iterable[tuple[FeedEntry, str]]) -> None:
        """Remember enqueued entries by canonical URL and guid, for the retention window:
        a call for each thousand."""
        ttl = self.settings.retention_seconds
        for chunk in _thousands(list(entries)):
            keys: list[str] = []
            for entry, _ in chunk:
                keys += [self.keys.seen_url(entry.canonical_url), self.keys.seen_guid(entry.guid)]
            self._mark_seen(keys=keys, args=[ttl, *(job for _, job in chunk)])

    # -- feed state ---------------------------------------------------------------

    def feed_state(self, name: str) -> dict[str, str]:
        return decode_hash(self.redis.hgetall(self.keys.feed(name)))

    def feed_states(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The state of each feed: a script call for each thousand."""
        states: dict[str, dict[str, str]] = {}
        for chunk in _thousands(names):
            replies = self._feed_states(keys=[self.keys.feed(name) for name in chunk])
            for name, flat in zip(chunk, replies, strict=True):
                values = iter([v.decode("utf-8", "replace") for v in flat])  # all bytes
                states[name] = dict(zip(values, values, strict=True))
        return states

    def save_feed_states(self, saves: Sequence[tuple[str, Mapping[str, str], float]]) -> None:
        """Record each (name, changed fields, next check): the fields in the feed's state
        hash and its time in the due set, which ends its lease. A script call for each
        thousand, each atomic."""
        for chunk in _thousands(saves):
            args: list[Any] = []
            for name, changes, next_check in chunk:
                args += [name, next_check, len(changes)]
                for field, value in changes.items():
                    args += [field, value]
            self._save_feed_states(
                keys=[self.keys.feeds_due, *(self.keys.feed(name) for name, _, _ in chunk)],
                args=args)

    def incr_stats(self, counts: Mapping[str, int]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name, n in counts.items():
            if n:
                pipe.hincrby(self.keys.stats, name, n)
        pipe.execute()

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in decode_hash(self.redis.hgetall(self.keys.stats)).items()}


class Commit:
    """One article's commit (:meth:`Store.commit`) in steps, so that the worker can
    prepare its next article while Redis runs this one's script: :meth:`send` writes
    the script's first call on a connection of its own without waiting; :meth:`advance`
    reads its reply and, when it hands back candidates, verifies them and sends the next
    call, again without waiting; :meth:`result` reads what is in flight (or makes the
    call, if it was never sent or its connection failed) and ends the commit as
    :meth:`Store.commit` does. The article's probe is made at :meth:`prepare`, or when
    first needed."""

    def __init__(
        self, store: Store, record: ArticleRecord, now: datetime,
        rebuild: Callable[[], ArticleRecord] | None,
    ) -> None:
        self.store, self.record, self.now, self.rebuild = store, record, now, rebuild
        self.published = parse_iso(record.published) or now
        self._article: Probe | None = None
        self._sent: Any = None  # the connection whose reply is the call's in flight
        self._in_flight: tuple[set[str], Decision, str] = (set(), Decision(), "")
        self._steps: Generator[None, None, CommitResult] | None = None
        self._ended: CommitResult | Exception | None = None

    @property
    def article(self) -> Probe:
        if self._article is None:
            self._article = probe(self.record.id, self.record.text, self.published)
        return self._article

    def prepare(self) -> None:
        """Make the article's probe now (the first call needs it)."""
        _ = self.article

    def _call(self, seen: set[str], decision: Decision, read_at: str) -> Any:
        return self.store._run_commit(self.record, self.article, self.now, seen, decision,
                                      read_at, check=True,
                                      check_learned=self.rebuild is not None)

    def send(self) -> None:
        """Put the script's first call on the wire; its reply waits for :meth:`advance`
        or :meth:`result`."""
        self._send(set(), Decision(), "")

    def _send(self, seen: set[str], decision: Decision, read_at: str) -> None:
        """Put a call on the wire. A connection that fails here leaves the call to
        :meth:`_reply`, with the client's retries."""
        self._in_flight = (seen, decision, read_at)
        keys, args = self.store._commit_call(
            self.record, self.article, self.now, seen, decision, read_at, check=True,
            check_learned=self.rebuild is not None)
        pool = self.store.redis.connection_pool
        try:
            connection: Any = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError):
            return
        try:
            connection.send_command("EVALSHA", self.store._commit.sha, len(keys), *keys, *args)
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            pool.release(connection)
            return
        self._sent = connection

    def _reply(self) -> Any:
        connection, self._sent = self._sent, None
        if connection is not None:
            pool = self.store.redis.connection_pool
            try:
                return self.store.redis.parse_response(  # type: ignore[no-untyped-call]
                    connection, "EVALSHA")
            except NoScriptError:
                pass  # Redis restarted meanwhile: the call below loads the script again
            except (redis.ConnectionError, redis.TimeoutError):
                # Called again below; had the script run, the call finds the URL stored
                # ("exists"), as the client's own retry would.
                connection.disconnect()
            finally:
                pool.release(connection)
        return self._call(*self._in_flight)

    def advance(self) -> None:
        """Read the reply in flight; when it asks for a proposal, verify the candidates
        and send the next call. What goes wrong is raised by :meth:`result`."""
        if self._ended is not None:
            return
        self._steps = self._steps or self._rounds()
        try:
            next(self._steps)
        except StopIteration as done:
            self._ended = done.value
        except Exception as e:
            self._ended = e

    def result(self) -> CommitResult:
        while self._ended is None:
            self.advance()
        if isinstance(self._ended, Exception):
            raise self._ended
        return self._ended

    def _rounds(self) -> Generator[None, None, CommitResult]:
        """The commit, paused after each call it sends."""
        raw = self._reply()
        for proposals in range(COMMIT_ATTEMPTS + 1):  # the first call has nothing to propose
            if raw is None:  # the record made again: its own first call
                raw = self._call(set(), Decision(), "")
            kind = decoded(raw[0])
            if kind == "learned" and self.rebuild is not None:
                self.store._remember_learned(self.record.site, self.record.blocks, raw[7])
                self.record = self.rebuild()
                self._article, raw = None, None
                continue
            if kind != "retry":
                return _result(raw)
            if proposals < COMMIT_ATTEMPTS:
                self._send(*self.store.verify(self.article, raw))
                yield
                raw = self._reply()
        raise StoreError(
            f"article {self.record.id}: gave up after {COMMIT_ATTEMPTS} commits raced with "
            "others")
