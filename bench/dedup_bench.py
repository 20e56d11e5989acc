"""Dedup benchmark: quality on the labelled pairs, MinHash vs SimHash, commit time and
memory at 1k, 10k and 100k stored articles.

Runs against a redis-server of its own (newswire's embedded one, in a temp folder) and
commits through the real :class:`newswire.store.Store`, so what is measured is what the
worker does. Prints every figure beside what it is compared with in the same run.

    .venv/bin/python bench/dedup_bench.py              # everything (about 3-5 minutes)
    .venv/bin/python bench/dedup_bench.py --quick      # pairs, and 1k/10k only
    .venv/bin/python bench/dedup_bench.py --sizes 1000,10000,100000 --queries 200

Parts:

1. **Labelled pairs** (``tests/data/dedup/pairs.toml``, built by ``bench/make_pairs.py``):
   each pair is committed into an empty store, ``a`` first, ``b`` the labelled hours later;
   the level decided for ``b`` (``fingerprint``/``minhash`` = same article, ``story`` =
   rewrite, new = apart) is compared with the label. Precision and recall per level, and a
   second run with every pair published at the same time ("time-blind"), which shows that
   the related stories are kept apart by their content, not only by their dates.
2. **MinHash vs SimHash** on the "same article" pairs: the share each finds (MinHash: the
   LSH buckets bring the copy up and its true Jaccard passes the threshold; SimHash: 64-bit
   Charikar hash of the same shingles within Hamming distance 3, the radius permuted-block
   tables serve) and the share of apart pairs each would flag.
3. **Commit time** (``Store.commit``: the commit script counting the bucket and posting
   members, the candidates fetched and verified, the script again to store), median and
   95th percentile, for the same query articles against synthetic corpora of each size
   (bulk-loaded with pipelined commit scripts, each under its own key prefix in one
   Redis); the queries go to the sizes in turn, so other load on the machine weighs on
   all alike. 40 % of the queries are edited copies of stored articles, which must be
   found; 20 % are about a busy topic (100 stored articles sharing six names and four
   figures), so that each of their commits fetches and verifies a full set of story
   candidates: the bounded worst case.
4. **Memory**: Redis ``used_memory`` grown per stored article while a corpus was built
   (article hash, exact keys, index entries, stream entry), and the article hash alone.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newswire import neardup  # noqa: E402
from newswire.embedded import RedisServer  # noqa: E402
from newswire.fingerprint import fingerprint  # noqa: E402
from newswire.model import ArticleRecord, iso  # noqa: E402
from newswire.schema import article_id  # noqa: E402
from newswire.settings import Settings  # noqa: E402
from newswire.store import Store  # noqa: E402

DATA = ROOT / "tests" / "data"
BASE = datetime(2025, 2, 20, 9, 0, tzinfo=UTC)
LEVEL_OF = {"fingerprint": "same", "minhash": "same", "canonical_url": "same",
            "story": "rewrite", "": "apart"}
LABEL_LEVEL = {"same": "same", "rewrite": "rewrite", "related": "apart", "unrelated": "apart"}


def make_record(url: str, text: str, published: datetime, now: datetime) -> ArticleRecord:
    return ArticleRecord(
        id=article_id(url), url=url, canonical_url=url, feed="bench", title=url[-30:],
        text=text, published=iso(published), fetched=iso(now), fingerprint=fingerprint(text),
    )


# -- 1. labelled pairs ----------------------------------------------------------------


def load_pairs() -> tuple[dict[str, str], list[dict[str, object]]]:
    spec = tomllib.loads((DATA / "dedup" / "pairs.toml").read_text(encoding="utf-8"))
    texts = {name: (DATA / rel).read_text(encoding="utf-8") for name, rel in
             spec["files"].items()}
    return texts, spec["pair"]


def run_pairs(store: Store, time_blind: bool) -> list[tuple[dict[str, object], str, str]]:
    texts, pairs = load_pairs()
    out = []
    for pair in pairs:
        store.redis.flushdb()
        a, b = str(pair["a"]), str(pair["b"])
        hours = 0.0 if time_blind else float(pair["hours"])  # type: ignore[arg-type]
        later = BASE + timedelta(hours=hours)
        store.commit(make_record(f"https://a.example/{a}", texts[a], BASE, BASE), BASE)
        result = store.commit(make_record(f"https://b.example/{b}", texts[b], later, later),
                              later)
        out.append((pair, LEVEL_OF[result.method], result.similarity))
    return out


def report_pairs(results: list[tuple[dict[str, object], str, str]], title: str) -> None:
    print(f"\n{title}: {len(results)} pairs")
    confusion: Counter[tuple[str, str]] = Counter()
    for pair, level, _ in results:
        confusion[(str(pair["label"]), level)] += 1
    print(f"  {'label':10s} {'-> same':>8s} {'-> rewrite':>11s} {'-> apart':>9s}")
    for label in ("same", "rewrite", "related", "unrelated"):
        row = [confusion[(label, lv)] for lv in ("same", "rewrite", "apart")]
        print(f"  {label:10s} {row[0]:8d} {row[1]:11d} {row[2]:9d}")
    for level in ("same", "rewrite"):
        tp = sum(1 for p, lv, _ in results if lv == level and LABEL_LEVEL[str(p["label"])] == level)
        predicted = sum(1 for _, lv, _ in results if lv == level)
        actual = sum(1 for p, _, _ in results if LABEL_LEVEL[str(p["label"])] == level)
        print(f"  level {level:8s} precision {tp / predicted if predicted else 1:.3f} "
              f"({tp}/{predicted})  recall {tp / actual if actual else 1:.3f} ({tp}/{actual})")
    grouped = [(LABEL_LEVEL[str(p["label"])] != "apart", lv != "apart") for p, lv, _ in results]
    tp = sum(1 for t, g in grouped if t and g)
    print(f"  grouped into one story: precision {tp / max(1, sum(g for _, g in grouped)):.3f}"
          f"  recall {tp / max(1, sum(t for t, _ in grouped)):.3f}")
    misses = [f"{p['a']} ~ {p['b']} ({p['label']} -> {lv})" for p, lv, _ in results
              if LABEL_LEVEL[str(p["label"])] != lv]
    for miss in misses:
        print(f"  missed: {miss}")


# -- 2. MinHash vs SimHash ------------------------------------------------------------


def simhash(shingles: frozenset[int]) -> int:
    """Charikar's 64-bit SimHash of a set of shingle hashes (each shingle weighs 1)."""
    weights = [0] * 64
    for h in shingles:
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def compare_sketches(threshold: float) -> None:
    texts, pairs = load_pairs()
    rows: dict[str, list[tuple[bool, bool]]] = {}
    for pair in pairs:
        a, b = neardup.shingles(texts[str(pair["a"])]), neardup.shingles(texts[str(pair["b"])])
        shared_band = bool(set(neardup.band_keys(neardup.signature(a)))
                           & set(neardup.band_keys(neardup.signature(b))))
        minhash_hit = shared_band and neardup.jaccard(a, b) >= threshold
        simhash_hit = bin(simhash(a) ^ simhash(b)).count("1") <= 3
        if pair["label"] == "same":
            kind = str(pair["b"]).split("--")[-1] if "--" in str(pair["b"]) else str(pair["b"])
        else:
            kind = f"({pair['label']})"
        rows.setdefault(kind, []).append((minhash_hit, simhash_hit))
    print("\nMinHash LSH (16x4 bands, verified Jaccard >= "
          f"{threshold}) vs SimHash (64 bit, Hamming <= 3), share of pairs found:")
    print(f"  {'pair kind':24s} {'n':>3s} {'MinHash':>8s} {'SimHash':>8s}")
    for kind, hits in sorted(rows.items(), key=lambda kv: (kv[0].startswith("("), kv[0])):
        m = sum(h[0] for h in hits) / len(hits)
        s = sum(h[1] for h in hits) / len(hits)
        print(f"  {kind:24s} {len(hits):3d} {m:8.2f} {s:8.2f}")


# -- 3. commit time at scale ----------------------------------------------------------

SYLLABLES = ["ka", "lo", "ri", "ven", "tor", "sa", "mi", "del", "ur", "po", "nes", "ta",
             "bre", "gan", "il", "os", "fer", "du", "ma", "quin", "rel", "so", "vi", "an"]


def vocabulary(rng: random.Random, n: int, capital: bool = False) -> list[str]:
    words = set()
    while len(words) < n:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        words.add(word.capitalize() if capital else word)
    return sorted(words)


class Corpus:
    """Synthetic news: Zipf-distributed words, a pool of names, figures; deterministic."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.words = vocabulary(rng, 20_000)
        self.names = vocabulary(rng, 5_000, capital=True)
        self.word_weights = [1 / (i + 1) for i in range(len(self.words))]
        self.name_weights = [1 / (i + 1) ** 0.8 for i in range(len(self.names))]

    def text(self, i: int, words: int = 160) -> str:
        rng = random.Random(i)
        cast = rng.choices(self.names, self.name_weights, k=6)
        body = rng.choices(self.words, self.word_weights, k=words)
        for j in range(0, words, 9):  # a name every 9 words, a figure every 27
            body[j] = rng.choice(cast)
            if j % 27 == 0:
                body[j + 1 if j + 1 < words else j] = str(rng.randint(10, 99_999))
        sentences = [" ".join(body[j: j + 18]) + "." for j in range(0, words, 18)]
        return "\n".join(" ".join(sentences[j: j + 3]) for j in range(0, len(sentences), 3))

    def hot(self, i: int) -> str:
        """An article of a busy news day: the same six names and figures as every other
        hot article, its own words. Each one finds many story candidates to verify."""
        rng = random.Random(-1_000_000 - i)
        body = rng.choices(self.words, self.word_weights, k=160)
        cast = ["Hotland", "Varnaby", "Quellmark", "Ostrava", "Tindrel", "Merrow"]
        for j in range(0, 160, 9):
            body[j] = cast[(j // 9) % len(cast)]
            if j % 27 == 0 and j + 1 < 160:
                body[j + 1] = ["1234", "56.7", "890", "2025"][(j // 27) % 4]
        sentences = [" ".join(body[j: j + 18]) + "." for j in range(0, 160, 18)]
        return "\n".join(" ".join(sentences[j: j + 3]) for j in range(0, len(sentences), 3))

    def edited(self, i: int) -> str:
        rng = random.Random(-i)
        words = self.text(i).split(" ")
        for _ in range(4):
            words[rng.randrange(len(words))] = rng.choice(self.words)
        return " ".join(words)


def published_of(i: int, now: datetime) -> datetime:
    return now - timedelta(seconds=random.Random(i * 31).randint(0, 29 * 86_400))


def grow(store: Store, corpus: Corpus, start: int, stop: int, now: datetime) -> float:
    began = time.perf_counter()
    batch: list[ArticleRecord] = []
    for i in range(start, stop):
        batch.append(make_record(f"https://c.example/{i}", corpus.text(i), published_of(i, now),
                                 now))
        if len(batch) == 500:
            store.load(batch, now)
            batch = []
    if batch:
        store.load(batch, now)
    return time.perf_counter() - began


def measure(stores: dict[int, Store], corpus: Corpus, queries: int, now: datetime,
            rng: random.Random) -> dict[int, dict[str, float]]:
    """Commit times (lookup included) of the same queries against every corpus size,
    interleaved (each query goes to the sizes in turn, in a rotating order), so that load
    from other processes on the machine weighs on every size alike."""
    sizes = sorted(stores)
    commits: dict[int, list[float]] = {size: [] for size in sizes}
    hot_commits: dict[int, list[float]] = {size: [] for size in sizes}
    found = dict.fromkeys(sizes, 0)
    copies = int(queries * 0.4)
    hot = int(queries * 0.6)  # queries copies..hot-1 are about the busy topic
    for w in range(20):  # warm up: scripts loaded, connections and caches hot
        warm = make_record(f"https://w.example/{w}", corpus.text(20_000_000 + w), now, now)
        for store in stores.values():
            store.commit(warm, now)
    for q in range(queries):
        if q < copies:  # an edited copy of an article every corpus holds
            source = rng.randrange(min(sizes))
            text, published = corpus.edited(source), published_of(source, now)
        elif q < hot:
            text, published = corpus.hot(1000 + q), now
        else:
            n = 10_000_000 + q
            text, published = corpus.text(n), published_of(n, now)
        record = make_record(f"https://q.example/{q}", text, published, now)
        for size in sizes[q % len(sizes):] + sizes[: q % len(sizes)]:
            t0 = time.perf_counter()
            result = stores[size].commit(record, now)
            millis = (time.perf_counter() - t0) * 1000
            commits[size].append(millis)
            if copies <= q < hot:
                hot_commits[size].append(millis)
            # The same source drawn twice gives the same copy: then the fingerprint finds it.
            if q < copies and result.method in ("minhash", "fingerprint"):
                found[size] += 1
    out = {}
    for size in sizes:
        cm = sorted(commits[size])
        out[size] = {"commit_median": statistics.median(cm),
                     "commit_p95": cm[int(len(cm) * 0.95) - 1],
                     "copies_found": found[size] / max(1, copies),
                     "hot_median": statistics.median(hot_commits[size])}
    return out


def hash_bytes(client: redis.Redis, store: Store, stored: int) -> float:
    sample = [store.keys.article(article_id(f"https://c.example/{i}"))
              for i in range(0, stored, max(1, stored // 200))]
    return statistics.mean(client.memory_usage(key, samples=0) or 0 for key in sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000")
    parser.add_argument("--skip-pairs", action="store_true")
    args = parser.parse_args()
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder), persist=False).start()
        try:
            client = redis.Redis.from_url(server.url)
            settings = Settings(redis_url=server.url)
            store = Store(client, settings)
            print(f"settings: neardup_threshold={settings.neardup_threshold} "
                  f"story_threshold={settings.story_threshold} "
                  f"story_window_hours={settings.story_window_hours} "
                  f"index_bucket_max={settings.index_bucket_max} "
                  f"dedup_candidates={settings.dedup_candidates}")
            if not args.skip_pairs:
                report_pairs(run_pairs(store, time_blind=False), "Labelled pairs")
                report_pairs(run_pairs(store, time_blind=True),
                             "Labelled pairs, time-blind (all published at once)")
                compare_sketches(settings.neardup_threshold)

            client.flushdb()
            corpus = Corpus()
            now = BASE + timedelta(days=30)
            stores: dict[int, Store] = {}
            built: dict[int, tuple[float, float, float]] = {}
            print(f"\nBuilding corpora of {', '.join(map(str, sizes))} synthetic articles "
                  "(each under its own key prefix in one Redis) ...", flush=True)
            for size in sizes:
                store_n = Store(client, settings.with_(prefix=f"bench{size}"))
                before = int(client.info("memory")["used_memory"])
                seconds = grow(store_n, corpus, 0, size, now)
                used = int(client.info("memory")["used_memory"]) - before
                stores[size] = store_n
                built[size] = (seconds, used / size, hash_bytes(client, store_n, size))
                # A busy topic: 100 articles sharing six names and four figures, so that
                # every "hot" query has a dozen story candidates to fetch and verify.
                store_n.load([make_record(f"https://hot.example/{i}", corpus.hot(i), now, now)
                              for i in range(100)], now)
            rows = measure(stores, corpus, args.queries, now, random.Random(1))
            print(f"\nCommit (lookup included), the same {args.queries} queries against each "
                  "size, interleaved (40 % edited copies of stored articles, 20 % about a busy "
                  "topic, 40 % fresh), milliseconds:")
            print(f"  {'stored':>7s} {'build s':>8s} {'commit med':>10s} {'p95':>6s} "
                  f"{'busy med':>8s} {'copies found':>12s} "
                  f"{'bytes/article':>13s} {'article hash':>12s}")
            first = rows[sizes[0]]
            for size in sizes:
                row, (seconds, per_article, hash_size) = rows[size], built[size]
                print(f"  {size:7d} {seconds:8.1f} {row['commit_median']:10.2f} "
                      f"{row['commit_p95']:6.2f} {row['hot_median']:8.2f} "
                      f"{row['copies_found']:12.2f} "
                      f"{per_article:13.0f} {hash_size:12.0f}")
                if size != sizes[0]:
                    commit_x = f"x{row['commit_median'] / first['commit_median']:.2f}"
                    hot_x = f"x{row['hot_median'] / first['hot_median']:.2f}"
                    print(f"  {'':7s} {'':8s} {commit_x:>10s} {'':6s} {hot_x:>8s}"
                          f"   (median vs {sizes[0]})")
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
