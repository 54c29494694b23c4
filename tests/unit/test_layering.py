"""The import rules that the packages' docstrings state, checked against the code: which part of
``shared`` may import which, no Flask or Celery in ``shared``, and ``api`` meeting ``workers``
only in its app factory. A new import that breaks a rule fails here, before it makes a cycle.

The URL guard sits at the top (``shared/url_guard.py``) because both delivery (webhooks) and
flow (the http step) call user-chosen URLs through it; it imports only errors, and flow may
import it besides errors."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP = {"config", "errors", "states", "drive", "drive_ops", "storage", "url_guard"}
# What each part of shared may import besides itself; the top-level modules are listed too,
# since the lowest ones may not import the others.
MAY_IMPORT = {
    "config": set(),
    "errors": set(),
    "states": set(),
    "url_guard": {"errors"},
    "store": {"config", "errors", "states"},
    # Where the drive's bytes live (a local folder, an object store), below the drive.
    "storage": {"config", "errors"},
    "drive": {"errors", "storage"},
    "drive_ops": {"errors", "drive", "storage"},
    # Prometheus series and trace context, below everything that records into them.
    "metrics": {"store", "config", "errors", "states"},
    "accounts": {"store", "config", "errors", "states", "drive", "storage"},
    "flow": {"errors", "url_guard"},
    "delivery": {"accounts", "store", "metrics", *TOP},
    "jobs": {"accounts", "store", "delivery", "metrics", *TOP},
    "engine": {"accounts", "store", "jobs", "flow", "metrics", *TOP},
    "runs": {"accounts", "engine", "jobs", "delivery", "flow", "store", "metrics", *TOP},
    "review": {"accounts", "engine", "jobs", "store", *TOP},
    "contents": {"accounts", "engine", "flow", "jobs", "review", "runs", "store", *TOP},
    "ops": {"accounts", "store", "jobs", "delivery", "engine", "runs", "review", "flow", *TOP},
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` gives ``a.b`` too,
    since ``b`` may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def part_of(path: Path) -> str:
    relative = path.relative_to(REPO / "shared")
    return relative.parts[0].removesuffix(".py")


def test_every_part_of_shared_imports_only_what_it_may():
    broken = []
    for path in (REPO / "shared").rglob("*.py"):
        if "migrations" in path.parts or path.parent == REPO / "shared" and path.stem == "__init__":
            continue
        part = part_of(path)
        allowed = MAY_IMPORT[part] | {part}
        for name in imports_of(path):
            if not name.startswith("shared."):
                continue
            target = name.split(".")[1]
            if target in MAY_IMPORT and target not in allowed:
                broken.append(f"{path.relative_to(REPO)} imports {name}")
    assert not broken, "\n".join(sorted(set(broken)))


def test_no_flask_or_celery_in_shared():
    found = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in (REPO / "shared").rglob("*.py")
        for name in imports_of(path)
        if name.split(".")[0] in ("flask", "flask_smorest", "celery", "kombu")
    ]
    assert not found, "\n".join(found)


def test_api_meets_workers_only_in_the_app_factory():
    found = {
        str(path.relative_to(REPO))
        for path in (REPO / "api").rglob("*.py")
        if any(name.split(".")[0] == "workers" for name in imports_of(path))
    }
    assert found == {"api/app.py"}
