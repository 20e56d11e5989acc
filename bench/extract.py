"""Main-text extraction: newswire's cleaner against plain trafilatura, on the same pages.

    .venv/bin/python bench/extract.py [--repeat 3] [--no-download] [--pages]

Corpus, both with hand-checked or shipped reference bodies:

* ``tests/data/pages/*.html``: newswire's own fixture pages in the NEWS-SHAPES shapes
  (donation appeals, newsletter boxes, "Read more", bylines, credits, "Original url"),
  each beside its expected clean body.
* The article pages that the newspaper4k package ships in its source distribution
  (MIT licence) under ``tests/data/html`` with their reference texts in
  ``tests/data/txt``: real news pages of several sites and languages. The sdist is
  fetched with ``pip download`` into ``bench/.cache`` (nothing of it is committed).
  Its references are newspaper's expected output, checked by its authors, not
  hand-cut bodies: a figure on them ranks extractors, it is no absolute truth.

Score: per page, precision and recall of the set of word 4-gram shingles of the
extracted text against the reference (as in the public article-extraction
benchmarks), F1 from those; a page an extractor returns nothing for scores 0. Time:
CPU seconds per page, the median of ``--repeat`` runs, for the whole call on the HTML
string (parsing included). Figures printed per corpus and for all pages.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newswire.clean import clean_page, decode_html  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
NEWSPAPER = "newspaper4k==0.9.6"
FIXTURE_BASE = "http://127.0.0.1:8000"
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]|\w+")


@dataclass(frozen=True)
class Page:
    corpus: str
    name: str
    html: str
    reference: str


def shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """Word n-grams of the lower-cased text (CJK and Thai characters are one token
    each, as those scripts have no spaces between words)."""
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def score(extracted: str, reference: str) -> tuple[float, float, float]:
    got, want = shingles(extracted), shingles(reference)
    if not got or not want:
        return 0.0, 0.0, 0.0
    common = len(got & want)
    precision, recall = common / len(got), common / len(want)
    f1 = 2 * precision * recall / (precision + recall) if common else 0.0
    return precision, recall, f1


def fixture_pages() -> list[Page]:
    pages = []
    for path in sorted((ROOT / "tests" / "data" / "pages").glob("*.html")):
        raw = path.read_bytes().replace(b"{{BASE}}", FIXTURE_BASE.encode())
        reference = path.with_suffix(".expected.txt").read_text(encoding="utf-8")
        pages.append(Page("news-shapes", path.stem, decode_html(raw), reference))
    return pages


def newspaper_pages(download: bool) -> list[Page]:
    CACHE.mkdir(parents=True, exist_ok=True)
    archives = sorted(CACHE.glob("newspaper4k-*.tar.gz"))
    if not archives and download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             NEWSPAPER, "-d", str(CACHE)],
            check=True,
        )
        archives = sorted(CACHE.glob("newspaper4k-*.tar.gz"))
    if not archives:
        print("newspaper4k corpus: not downloaded (--no-download); fixture pages only",
              file=sys.stderr)
        return []
    htmls: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    with tarfile.open(archives[-1]) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 4 or parts[-3:-1] not in (("data", "html"), ("data", "txt")):
                continue
            data = archive.extractfile(member)
            if data is None:
                continue
            stem = Path(member.name).stem
            if parts[-2] == "html":
                htmls[stem] = data.read()
            else:
                texts[stem] = data.read().decode("utf-8", "replace")
    return [
        Page("newspaper4k", stem, decode_html(htmls[stem]), texts[stem])
        for stem in sorted(htmls.keys() & texts.keys())
        if texts[stem].strip()
    ]


def plain_trafilatura(page: Page) -> str:
    return trafilatura.extract(page.html) or ""


def plain_trafilatura_metadata(page: Page) -> str:
    document = trafilatura.bare_extraction(page.html, with_metadata=True)
    return (document.text or "") if document is not None else ""


def newswire_cleaner(page: Page) -> str:
    article = clean_page(page.html)
    return article.text if article is not None else ""


EXTRACTORS: dict[str, Callable[[Page], str]] = {
    "trafilatura": plain_trafilatura,
    "trafilatura+metadata": plain_trafilatura_metadata,
    "newswire": newswire_cleaner,
}


def measure(pages: list[Page], repeat: int) -> dict[str, dict[str, tuple[float, ...]]]:
    """Per extractor, per page name: (precision, recall, f1, cpu seconds)."""
    results: dict[str, dict[str, tuple[float, ...]]] = {name: {} for name in EXTRACTORS}
    for page in pages:
        for name, extractor in EXTRACTORS.items():
            times = []
            for _ in range(repeat):
                started = time.process_time()
                text = extractor(page)
                times.append(time.process_time() - started)
            results[name][f"{page.corpus}/{page.name}"] = (
                *score(text, page.reference), statistics.median(times))
    return results


def summarize(rows: dict[str, tuple[float, ...]]) -> tuple[float, float, float, float]:
    values = list(rows.values())
    return tuple(statistics.mean(v[i] for v in values) for i in range(4))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per page (median)")
    parser.add_argument("--no-download", action="store_true", help="fixture pages only")
    parser.add_argument("--pages", action="store_true", help="print every page's scores")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()

    pages = fixture_pages() + newspaper_pages(download=not args.no_download)
    for page in pages[:2]:  # warm imports and caches outside the timed runs
        for extractor in EXTRACTORS.values():
            extractor(page)
    results = measure(pages, args.repeat)
    corpora = sorted({p.corpus for p in pages})
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for corpus in [*corpora, "all"]:
        summary[corpus] = {}
        for name, rows in results.items():
            picked = {k: v for k, v in rows.items() if corpus == "all" or k.startswith(corpus)}
            p, r, f1, seconds = summarize(picked)
            summary[corpus][name] = {"pages": len(picked), "precision": p, "recall": r,
                                     "f1": f1, "ms_per_page": seconds * 1000}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if args.pages:
        print(f"{'page':45} " + "  ".join(f"{n:>22}" for n in EXTRACTORS))
        for key in results["newswire"]:
            cells = "  ".join(
                f"F1 {results[n][key][2]:.3f} {results[n][key][3] * 1000:7.1f} ms"
                for n in EXTRACTORS)
            print(f"{key:45} {cells}")
        print()
    base = "trafilatura"
    print(f"{'corpus':12} {'extractor':22} {'pages':>5} {'precision':>9} {'recall':>7} "
          f"{'F1':>6} {'ms/page':>8} {'time vs trafilatura':>20}")
    for corpus, rows in summary.items():
        for name, row in rows.items():
            ratio = row["ms_per_page"] / rows[base]["ms_per_page"]
            print(f"{corpus:12} {name:22} {row['pages']:5d} {row['precision']:9.3f} "
                  f"{row['recall']:7.3f} {row['f1']:6.3f} {row['ms_per_page']:8.1f} "
                  f"{ratio:19.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
