"""Keeping a long-running process's startup objects out of its full garbage collections.

An API or worker process holds some 150,000 objects once its modules are imported and its app
is built: the routes, schemas, SQLAlchemy's tables and compiled statements, Celery's app. A
full (generation 2) collection walks every one of them, 70-80 ms on the 2-core development
machine, and whichever request or step is running then waits that long. Frozen, they move to a
permanent generation that no collection walks (they live as long as the process anyway); a
full collection then walks only what was made since."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once the process has built what it keeps for its whole life. No collection first:
    in a forked child (a pool process) it would write to the header of every object inherited
    from the parent, and so copy the parent's memory pages that the child now shares; what
    startup left as garbage is little."""
    gc.freeze()
