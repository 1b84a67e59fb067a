"""README.md and docs/ hold together: relative links resolve, the README is short and links every page.

A link ``page.md#anchor`` must name a heading of that page by GitHub's rule (``heading_anchors``). Links to
other sites are not followed: this runs offline, in ``make test``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 150

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets (a badge, `[x]`).
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, …


def markdown_pages() -> list[Path]:
    """The README and every page of docs/ (not its sub-folders)."""
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    found = []
    for number, line in prose_lines(text):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1)))
            continue
        without_code = INLINE_CODE.sub("", line)
        found.extend((number, match.group(1)) for match in INLINE_LINK.finditer(without_code))
    return found


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text lower-cased, every character but letters,
    digits, spaces, ``-`` and ``_`` dropped, spaces turned into ``-``."""
    text = INLINE_CODE.sub(lambda match: match.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML renders as nothing
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings (a repeated slug gets ``-1``, ``-2``…) and HTML anchors."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    for _, line in prose_lines(text):
        anchors.update(HTML_ANCHOR.findall(line))
        heading = ATX_HEADING.match(line)
        if not heading:
            continue
        slug = github_slug(heading.group(2))
        anchors.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def broken_links(page: Path) -> list[str]:
    """What is wrong with each relative link of ``page``, in words."""
    problems = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if not target or EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(REPO_ROOT)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no such file {destination}")
        elif anchor and destination.suffix == ".md":
            if unquote(anchor) not in heading_anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{where}: {destination.name} has no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_fits_on_two_screens() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines, at most {README_MAX_LINES}: move reference text to a page of docs/"
    )


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for _, target in links(README.read_text(encoding="utf-8"))
        if not EXTERNAL.match(target)
    }
    missing = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not missing, f"README.md links no docs page named {missing}: add each to its Documentation list"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What listens where (measured)", "what-listens-where-measured"),
        ("Ray's own views", "rays-own-views"),
        ("Python API (`fracture_tune/__init__.py`)", "python-api-fracture_tune__init__py"),
        ("Training engine (trainables → search)", "training-engine-trainables--search"),
        (
            "Bookkeeping: thousands of 1-s trials against bare Ray Tune",
            "bookkeeping-thousands-of-1-s-trials-against-bare-ray-tune",
        ),
        ("A [linked](other.md) heading", "a-linked-heading"),
    ],
)
def test_github_slug(heading: str, anchor: str) -> None:
    assert github_slug(heading) == anchor


def test_repeated_headings_get_numbered_anchors_and_code_blocks_are_not_headings() -> None:
    text = '# Setup\n## Setup\n```bash\n# not a heading\n```\n<a name="here"></a>\n'
    assert heading_anchors(text) == {"setup", "setup-1", "here"}


def test_links_skip_code_and_keep_images_and_reference_definitions() -> None:
    text = "See [a](a.md#x) and `[b](b.md)`.\n```\n[c](c.md)\n```\n![pic](images/p.png)\n[ref]: d.md\n"
    assert [target for _, target in links(text)] == ["a.md#x", "images/p.png", "d.md"]
