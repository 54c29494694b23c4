"""Every operation of the OpenAPI spec is documented: its path is named on the page of its API
(v1, the resource API, the files faces), in full (``/api/v1/jobs/pause``) or, for v1, as the
docs name the seed's calls (``jobs/pause``). An endpoint added without a word in the docs
fails here."""

import re
from pathlib import Path

import pytest

from api.app import create_app
from shared.config import Settings

REPO = Path(__file__).resolve().parents[2]
# The page of each API, by the prefix of its paths; an operation is looked up on its page and
# on the pages that cover a theme across APIs (teams and sharing, Instabase clients).
PAGES = {
    "/api/v2/files": ["docs/coming-from-instabase.md"],
    "/api/v1/drives": ["docs/coming-from-instabase.md"],
    "/api/v2/": ["docs/resource-api.md", "docs/teams-and-sharing.md"],
    "/api/v1/": [
        "docs/job-control.md",
        "docs/flows.md",
        "docs/review.md",
        "docs/webhooks.md",
        "docs/sync-runs.md",
        "docs/teams-and-sharing.md",
        "docs/coming-from-instabase.md",
    ],
    "/": ["README.md", "docs/configuration.md", "docs/architecture.md"],
}
OPERATIONS = ("get", "head", "put", "post", "delete", "patch")
# A path parameter as the docs write it: <id>, {id}, or an example value.
PARAMETER = r"(?:<[^>]+>|\{[^}]+\}|[^\s`|)]+)"


def spec_operations(tmp_path_factory) -> list[tuple[str, str]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("spec"))
    spec = create_app(settings).extensions["flowbin.api"].spec.to_dict()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in OPERATIONS
    ]


def pages_for(path: str) -> list[str]:
    prefix = max((p for p in PAGES if path.startswith(p)), key=len)
    return PAGES[prefix]


def named_in(text: str, path: str) -> bool:
    # In full, after anything (a host, a backtick); the seed's short form only as a word.
    forms = [("", path)]
    if path.startswith("/api/v1/"):
        forms.append((r"(?<![\w/])", path.removeprefix("/api/v1/")))
    for before, form in forms:
        pattern = re.sub(r"\\\{[^}]*\\\}", lambda _: PARAMETER, re.escape(form))
        if re.search(rf"{before}{pattern}(?![\w/-])", text):
            return True
    return False


def test_every_operation_is_on_its_api_page(tmp_path_factory):
    undocumented = []
    for method, path in spec_operations(tmp_path_factory):
        text = "\n".join((REPO / page).read_text("utf-8") for page in pages_for(path))
        if not named_in(text, path):
            undocumented.append(f"{method} {path} (pages: {', '.join(pages_for(path))})")
    assert not undocumented, "undocumented operations:\n" + "\n".join(undocumented)


@pytest.mark.parametrize(
    ("text", "path", "found"),
    [
        ("`GET /api/v2/jobs/<id>/status`", "/api/v2/jobs/{job_id}/status", True),
        ("call `jobs/pause` to pause", "/api/v1/jobs/pause", True),
        ("`jobs/pause_all`", "/api/v1/jobs/pause", False),
        ("curl http://host:8000/api/v1/jobs/pause?job_id=1", "/api/v1/jobs/pause", True),
        ("`/api/v1/review/jobs/pause`", "/api/v1/jobs/pause", False),
        ("`/api/v2/jobs/<id>/statuses`", "/api/v2/jobs/{job_id}/status", False),
    ],
)
def test_a_path_is_found_only_as_itself(text, path, found):
    assert named_in(text, path) is found
