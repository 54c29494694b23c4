"""UDF modules: user Python that a ``udf`` step calls as ``function(record, context)``.

A UDF module runs in a fresh module object that stays out of ``sys.modules``, so two binaries
with a ``udfs/enrich.py`` of their own never see each other's code. Running user code
is the point of a UDF; the isolation here is about names, not security.
"""

from __future__ import annotations

import functools
import re
import sys
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})


def clean_udf_path(path: Any) -> str:
    """``path`` as a normalized relative POSIX path inside the project; ValueError otherwise."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("UDF path must be a non-empty string such as 'udfs/enrich.py'")
    if "\\" in path or "\0" in path or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"UDF path {path!r} must be a relative POSIX path such as 'udfs/x.py'")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"UDF path {path!r} must be relative and stay inside the project")
    if pure.suffix != ".py":
        raise ValueError(f"UDF path {path!r} must name a .py file")
    return pure.as_posix()


def parse_function_ref(ref: Any) -> tuple[str, str]:
    """'udfs/enrich.py:enrich' -> ('udfs/enrich.py', 'enrich')."""
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"function must look like 'udfs/module.py:function_name', got {ref!r}")
    path, _, name = ref.rpartition(":")
    if not _FUNCTION_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid Python function name (in {ref!r})")
    return clean_udf_path(path), name


def load_module(path: str, source: str) -> types.ModuleType:
    """Execute ``source`` as a new module named after ``path``; errors propagate.

    The module is in ``sys.modules`` only while its code runs, under a name no other load
    shares: class decorators such as ``@dataclass`` look their module up there."""
    name = f"flowbin_udf_{uuid.uuid4().hex}_" + re.sub(r"\W", "_", path.removesuffix(".py"))
    module = types.ModuleType(name)
    module.__file__ = path
    code = compile(source, path, "exec")
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # running the user's UDF module is the feature
    finally:
        sys.modules.pop(name, None)
    return module


@functools.lru_cache(maxsize=128)
def cached_module(content_hash: str, path: str, source: str) -> types.ModuleType:
    """A binary's UDF module, executed once per worker process."""
    return load_module(path, source)


def function_in(module: types.ModuleType, path: str, name: str) -> Callable[..., Any]:
    function = getattr(module, name, None)
    if function is None:
        raise ValueError(f"UDF module {path} has no function '{name}'")
    if not callable(function):
        raise ValueError(f"'{name}' in UDF module {path} is not callable")
    return function


@dataclass(frozen=True)
class UdfContext:
    """What a UDF receives as ``context``: the job, the run's runtime_config, and a logger that
    writes to the job's log only when the run asked for log_to_timeline."""

    job_id: str
    runtime_config: dict[str, Any]
    step_id: str
    file_name: str | None = None
    _log: Callable[[str, str], None] = field(default=lambda level, message: None, repr=False)
    _log_to_timeline: bool = False

    def log(self, message: str, level: str = "INFO") -> None:
        if not self._log_to_timeline:
            return
        level = str(level).upper()
        self._log(level if level in LOG_LEVELS else "INFO", f"[{self.step_id}] {message}")
