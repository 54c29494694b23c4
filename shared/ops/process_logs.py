"""What `flowbin up` shows of its processes: a line when each starts or stops on the console,
and everything each one prints in a log file of its own (``<data dir>/logs/<process>.log``).

The API logs every request and the worker two lines per step, so their output on the console
would bury the few lines a person starting the stack needs. Lines that report an error are
echoed to the console as well, with the file to read on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import IO

from honcho.printer import Message, Printer

# The level names in the processes' log formats (Celery "[... ERROR/MainProcess]", gunicorn
# "[ERROR]", Python's "ERROR:"), and a traceback's first line.
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback \(most recent call last\)")
SYSTEM = "system"  # honcho's own messages: a process started, stopped, was signalled


class ProcessLogs(Printer):
    """A honcho printer: system messages on ``output``, each process's lines in its file."""

    def __init__(self, folder: Path, output: IO[str] = sys.stdout, verbose: bool = False):
        super().__init__(output)
        self.folder = folder
        self.verbose = verbose
        self._files: dict[str, IO[str]] = {}

    def log_file(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def write(self, message: Message) -> None:
        if message.name == SYSTEM or self.verbose:
            super().write(message)
            if message.name == SYSTEM:
                return
        text = (
            message.data.decode("utf-8", "replace")
            if isinstance(message.data, bytes)
            else message.data
        )
        sink = self._file(message.name)
        sink.write(text if text.endswith("\n") else text + "\n")
        sink.flush()
        if not self.verbose and ERROR_LINE.search(text):
            line = text.rstrip("\n")
            print(
                f"{message.name}: {line} (more in {self.log_file(message.name)})",
                file=self.output,
                flush=True,
            )

    def _file(self, name: str) -> IO[str]:
        sink = self._files.get(name)
        if sink is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            sink = self._files[name] = self.log_file(name).open("a", encoding="utf-8")
        return sink

    def close(self) -> None:
        for sink in self._files.values():
            sink.close()
        self._files.clear()
