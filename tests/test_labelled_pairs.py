"""The labelled pair set (tests/data/dedup/pairs.toml, built by bench/make_pairs.py)
through the real commit: precision first, every rewrite found, nearly every copy found.

bench/dedup_bench.py prints the full confusion table and per-level figures.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from newswire.fingerprint import fingerprint
from newswire.model import ArticleRecord, iso
from newswire.schema import article_id
from newswire.settings import Settings
from newswire.store import Store

DATA = Path(__file__).parent / "data"
SPEC = tomllib.loads((DATA / "dedup" / "pairs.toml").read_text(encoding="utf-8"))
TEXTS = {name: (DATA / rel).read_text(encoding="utf-8") for name, rel in SPEC["files"].items()}
T0 = datetime(2025, 2, 20, 9, 0, tzinfo=UTC)
LEVEL = {"fingerprint": "same", "minhash": "same", "story": "rewrite", "": "apart"}


def commit(store: Store, name: str, when: datetime, side: str) -> str:
    url = f"https://{side}.example/{name}"
    text = TEXTS[name]
    result = store.commit(ArticleRecord(
        id=article_id(url), url=url, canonical_url=url, feed=side, title=name, text=text,
        published=iso(when), fetched=iso(when), fingerprint=fingerprint(text)), when)
    return LEVEL[result.method]


@pytest.fixture
def decided(client: redis.Redis, redis_url: str) -> list[tuple[dict[str, object], str]]:
    store = Store(client, Settings(redis_url=redis_url))
    out = []
    for pair in SPEC["pair"]:
        client.flushdb()
        commit(store, pair["a"], T0, "a")
        out.append((pair, commit(store, pair["b"], T0 + timedelta(hours=pair["hours"]), "b")))
    return out


def test_the_set_covers_every_label_and_the_news_shapes() -> None:
    labels = [p["label"] for p in SPEC["pair"]]
    for label in ("same", "rewrite", "related", "unrelated"):
        assert labels.count(label) >= 10, label
    named = {(p["a"], p["b"]): p["label"] for p in SPEC["pair"]}
    assert named[("mt-leaders-agree", "agg-leaders-agree")] == "same"
    assert named[("mt-leaders-agree", "rw-summit-rewrite")] == "rewrite"
    assert named[("mt-leaders-agree", "mt-macron-reengagement")] == "related"


def test_nothing_apart_is_grouped(decided) -> None:
    wrong = [(p["a"], p["b"], level) for p, level in decided
             if p["label"] in ("related", "unrelated") and level != "apart"]
    assert wrong == []


def test_every_rewrite_joins_its_story(decided) -> None:
    levels = [level for p, level in decided if p["label"] == "rewrite"]
    assert levels == ["rewrite"] * len(levels)


def test_copies_are_the_same_article(decided) -> None:
    same = [(p["b"], level) for p, level in decided if p["label"] == "same"]
    found = [b for b, level in same if level == "same"]
    assert len(found) / len(same) >= 0.95, [b for b, level in same if level != "same"]
    # A copy reformatted or with boilerplate is never missed; only a lead paragraph may be.
    assert all(level == "same" for b, level in same if "lead-only" not in str(b))
