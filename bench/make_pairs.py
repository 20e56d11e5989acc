"""Build the labelled pair set of the dedup benchmark and tests (run once; output committed).

Writes ``tests/data/dedup/variants/*.txt`` (edited copies of the original articles) and
``tests/data/dedup/pairs.toml`` (every pair with its label and the hours between the two
publications). Labels:

- ``same``: the same article reformatted or edited (level 1);
- ``rewrite``: the same story told in other words (level 2);
- ``related``: another story about the same people or topic (must stay apart);
- ``unrelated``: nothing in common.

Sources: the NEWS-SHAPES fixtures (``tests/data/pages/*.expected.txt``) and three story
triples written for this set (``tests/data/dedup/*.txt``: original, rewrite, later story).

    .venv/bin/python bench/make_pairs.py
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
OUT = DATA / "dedup"

ORIGINALS = {
    "mt-leaders-agree": "pages/mt-leaders-agree.expected.txt",
    "mt-ruble-steadies": "pages/mt-ruble-steadies.expected.txt",
    "mt-sanctions-review": "pages/mt-sanctions-review.expected.txt",
    "mt-macron-reengagement": "pages/mt-macron-reengagement.expected.txt",
    "rates-hold": "dedup/rates-hold.txt",
    "port-strike": "dedup/port-strike.txt",
    "floods": "dedup/floods.txt",
}
OTHERS = {
    "agg-leaders-agree": "pages/agg-leaders-agree.expected.txt",
    "tj-leaders-agree": "pages/tj-leaders-agree.expected.txt",
    "rw-summit-rewrite": "pages/rw-summit-rewrite.expected.txt",
    "rates-hold-rewrite": "dedup/rates-hold-rewrite.txt",
    "rates-cut-later": "dedup/rates-cut-later.txt",
    "port-strike-rewrite": "dedup/port-strike-rewrite.txt",
    "port-strike-later": "dedup/port-strike-later.txt",
    "floods-rewrite": "dedup/floods-rewrite.txt",
    "floods-later": "dedup/floods-later.txt",
}
BOILERPLATE_TOP = ["Advertisement", "Sign up for our free weekly newsletter",
                   "Photo: AFP / Staff"]
BOILERPLATE_BOTTOM = ["Read more: Five things to know before the weekend",
                      "© AFP 2025", "Share this article on social media",
                      "Original url: https://example.net/original"]


def read(rel: str) -> list[str]:
    return [p for p in (DATA / rel).read_text(encoding="utf-8").splitlines() if p.strip()]


def sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?”])\s+(?=[A-Z“])", paragraph) if s]


def variants(paragraphs: list[str]) -> dict[str, list[str]]:
    """Edited copies of one article, each named by its edit."""
    text = "\n".join(paragraphs)
    half = max(1, len(paragraphs) // 2)
    resplit = [s for p in paragraphs for s in sentences(p)]
    merged = [" ".join(paragraphs[i: i + 2]) for i in range(0, len(paragraphs), 2)]
    # A corrected paragraph: a figure changed and a clause added; plus an update at the end.
    corrected = list(paragraphs)
    second = corrected[1] if len(corrected) > 1 else corrected[0]
    second = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), second, count=1)
    corrected[1 if len(corrected) > 1 else 0] = second + " The figure was corrected later."
    corrected.append("This article was updated on Friday with a statement from officials, "
                     "who said more details would follow in the coming days.")
    # Small edits: one word in each paragraph swapped for another.
    swaps = {" said ": " stated ", " the ": " a ", " on ": " upon ", " and ": " & "}
    edited = []
    for i, p in enumerate(paragraphs):
        old, new = list(swaps.items())[i % len(swaps)]
        edited.append(p.replace(old, new, 1))
    return {
        "upper": text.upper().splitlines(),
        "lower": text.lower().splitlines(),
        "resplit": resplit,
        "merged": merged,
        "truncated-half": paragraphs[:half],
        "lead-only": paragraphs[:1],
        "corrected": corrected,
        "small-edits": edited,
        "boilerplate": BOILERPLATE_TOP + paragraphs + BOILERPLATE_BOTTOM,
    }


def main() -> None:
    (OUT / "variants").mkdir(parents=True, exist_ok=True)
    files = dict(ORIGINALS) | dict(OTHERS)
    pairs: list[tuple[str, str, str, float]] = []
    for name, rel in ORIGINALS.items():
        for kind, paragraphs in variants(read(rel)).items():
            vname = f"{name}--{kind}"
            vrel = f"dedup/variants/{vname}.txt"
            (DATA / vrel).write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
            files[vname] = vrel
            pairs.append((name, vname, "same", 2.0))
    # The NEWS-SHAPES pairs.
    pairs += [
        ("mt-leaders-agree", "agg-leaders-agree", "same", 1.4),  # shape 1
        ("mt-leaders-agree", "tj-leaders-agree", "same", 2.6),  # shape 5: edited AFP copy
        ("mt-leaders-agree", "rw-summit-rewrite", "rewrite", 5.1),  # shape 3
        ("agg-leaders-agree", "rw-summit-rewrite", "rewrite", 3.7),
        ("tj-leaders-agree", "rw-summit-rewrite", "rewrite", 2.5),
        ("mt-leaders-agree--corrected", "rw-summit-rewrite", "rewrite", 4.0),
        ("mt-leaders-agree", "mt-macron-reengagement", "related", 7086.0),  # shape 4
        ("rw-summit-rewrite", "mt-macron-reengagement", "related", 7081.0),
        ("tj-leaders-agree", "mt-macron-reengagement", "related", 7083.0),
        ("mt-leaders-agree", "mt-sanctions-review", "related", 20.4),
        ("rw-summit-rewrite", "mt-sanctions-review", "related", 18.3),
    ]
    for story, later, later_hours in (("rates-hold", "rates-cut-later", 720.0),
                                      ("port-strike", "port-strike-later", 4100.0),
                                      ("floods", "floods-later", 600.0)):
        pairs += [
            (story, f"{story}-rewrite", "rewrite", 3.0),
            (f"{story}--boilerplate", f"{story}-rewrite", "rewrite", 5.0),
            (f"{story}--small-edits", f"{story}-rewrite", "rewrite", 6.0),
            (story, later, "related", later_hours),
            (f"{story}-rewrite", later, "related", later_hours),
        ]
    groups = [["mt-leaders-agree"], ["mt-ruble-steadies"], ["rates-hold"], ["port-strike"],
              ["floods"], ["rates-cut-later"], ["port-strike-later"], ["floods-later"]]
    for (a,), (b,) in itertools.combinations(groups, 2):
        pairs.append((a, b, "unrelated", 10.0))
    pairs += [
        ("mt-sanctions-review", "mt-ruble-steadies", "unrelated", 18.0),
        ("rw-summit-rewrite", "mt-ruble-steadies", "unrelated", 1.0),
        ("rates-hold-rewrite", "port-strike-rewrite", "unrelated", 1.0),
        ("floods-rewrite", "mt-macron-reengagement", "unrelated", 1.0),
    ]
    lines = ["# Labelled pairs of the dedup benchmark, written by bench/make_pairs.py.",
             "# label: same | rewrite | related | unrelated; hours: publications apart.", ""]
    lines += ["[files]"] + [f'"{k}" = "{v}"' for k, v in sorted(files.items())] + [""]
    for a, b, label, hours in pairs:
        lines += ["[[pair]]", f'a = "{a}"', f'b = "{b}"', f'label = "{label}"',
                  f"hours = {hours}", ""]
    (OUT / "pairs.toml").write_text("\n".join(lines), encoding="utf-8")
    counts = {lab: sum(p[2] == lab for p in pairs) for lab in
              ("same", "rewrite", "related", "unrelated")}
    print(f"{len(pairs)} pairs: {counts}")


if __name__ == "__main__":
    main()
