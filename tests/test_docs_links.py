"""Every link in the README and docs/ lands: a relative link stays inside the repository (no
`../shared/...`, which a clone does not have), its file exists and, for a link to a heading, the
heading does (GitHub's anchor for it). Web addresses (upstream documentation) are references,
not checked here; any other scheme (file:, a local path) is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to -."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    heads = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_stays_in_the_repository_and_lands(page: Path) -> None:
    bad = []
    for target in links(page):
        if target.startswith(("https://", "http://")):
            continue
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # file:, mailto: ...
            bad.append(f"{target}: outside the repository")
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if ROOT not in dest.parents and dest != ROOT:
            bad.append(f"{target}: outside the repository")
        elif not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no such heading in {dest.name}")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_check_catches_a_broken_link(tmp_path: Path, monkeypatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](#nothing) [web](https://example.org) "
                    "[far](../../elsewhere.md)\n")
    assert links(page) == ["#title", "#nothing", "https://example.org", "../../elsewhere.md"]
    assert anchors(page) == {"title"}
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="no such heading.*outside the repository"):
        test_every_link_stays_in_the_repository_and_lands(page)


def test_the_readme_stays_short_and_carries_no_tracker_history() -> None:
    """A newcomer's page: at most 250 lines, and no issue numbers (there is no tracker in the
    repository; history is in docs/decisions.md and docs/benchmarks.md)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not re.findall(r"(?i)\bissues? \d+|(?<![\w&])#\d+\b", text)
