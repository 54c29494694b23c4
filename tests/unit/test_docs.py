"""The README and docs/ name only files that exist and link only to pages that exist, and cite
nothing outside the repository: a module that moves or a page that is renamed fails here."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A path the docs name in backticks: a folder of the repository, then path characters.
NAMED_PATH = re.compile(r"`((?:shared|api|workers|tests|bench|examples|docs)/[\w./-]*)[`(: ]")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_named_path_exists(page):
    missing = [
        named
        for named in NAMED_PATH.findall(page.read_text("utf-8"))
        if not (REPO / named.rstrip(".")).exists()
    ]
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_resolves_inside_the_repository(page):
    broken = []
    for target in LINK.findall(page.read_text("utf-8")):
        if re.match(r"^[a-z]+://", target):
            continue
        resolved = (page.parent / target).resolve()
        if REPO not in resolved.parents or not resolved.exists():
            broken.append(target)
    assert not broken, f"{page_id(page)} links to what is not in the repository: {broken}"


def test_the_docs_have_a_page_for_each_part_the_readme_sends_readers_to():
    readme = (REPO / "README.md").read_text("utf-8")
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", readme))
    assert linked == {page.name for page in PAGES[1:]}
