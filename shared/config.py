"""Flowbin's configuration: the only module that reads the environment.

Every setting comes from a ``FLOWBIN_*`` variable and has an embedded default that lives under
one data folder (``FLOWBIN_DATA_DIR``, default ``./var``), so a fresh checkout runs without any
pre-installed service.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Settings read from a variable of another name than FLOWBIN_<NAME>: the standard ones.
ENV_NAMES = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_region": "AWS_REGION",
}


def _env_name(name: str) -> str:
    return ENV_NAMES.get(name, f"FLOWBIN_{name.upper()}")


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    # Empty means "derive from data_dir": a SQLite file and a local drive folder.
    database_url: str = ""
    drive_dir: str = ""
    # Where the drive is (shared/storage/locate.py): empty, the local folder above;
    # file:///path, that folder; s3://bucket/prefix, an S3-compatible object store.
    drive_url: str = ""
    # The object store's endpoint (SeaweedFS, MinIO...); empty: AWS S3.
    s3_endpoint_url: str = ""
    # Read from the standard AWS_* variables (ENV_NAMES); empty: boto3's own chain.
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_region: str = ""
    # Empty means "start an embedded Redis" (flowbin up); workers and the API need a real URL.
    redis_url: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    flower_port: int = 5555
    flower_user: str = "admin"
    flower_password: str = ""
    admin_token: str = ""
    # Signs the web UI's session cookies. Empty: a key generated once into
    # <data_dir>/secret_key, shared by every API process on this host (api/ui/session.py).
    secret_key: str = ""
    # Seconds a step may run when the run asks for the platform default (step_timeout 0).
    default_step_timeout: int = 300
    # Unacked messages come back after this many seconds: it must exceed the longest step.
    visibility_timeout: int = 7200
    # How often beat looks for stalled steps (lapsed claims, unpublished jobs).
    recovery_interval: float = 60.0
    # Days after which beat deletes an ended job's rows from the store (shared/jobs/retention.py);
    # 0: never. How often it looks, in seconds.
    retention_days: int = 0
    retention_interval: float = 3600.0
    # Seconds `flowbin up`, asked to stop, lets running steps finish before it kills what is
    # left (a killed step is redelivered and runs again).
    shutdown_grace: float = 30.0
    # How many files of one job may have a step in the broker at a time (shared/engine/window.py),
    # so a job behind a big one waits for this many steps, not the big one's backlog; keep it
    # at least twice the worker slots. 0: no limit.
    job_window: int = 64
    # A submit records up to this many input files itself; a bigger folder is listed by a worker
    # (shared/runs/input_listing.py), this many files per transaction.
    input_batch_files: int = 1000
    # How many times one step of one file may be started before the file fails.
    max_step_attempts: int = 3
    # Seconds a sync run (flow/run_binary_sync) may take before it is stopped with a 504.
    sync_timeout: int = 60
    # Runner processes per API process that execute sync runs (shared/runs/sync_runners.py).
    sync_runners: int = 2
    worker_concurrency: int = 2
    log_level: str = "INFO"
    # Completion webhooks and notification emails (shared/delivery/). A failed attempt is
    # retried after about base * 2**(n-1) seconds (with jitter), never more than cap.
    delivery_retry_base: float = 30.0
    delivery_retry_cap: float = 3600.0
    # Seconds one attempt may wait on the receiver (HTTP connect and read, each SMTP command).
    delivery_timeout: float = 10.0
    # How often beat looks for due deliveries.
    delivery_interval: float = 5.0
    # Seconds a worker holds a claimed delivery; a worker that dies mid-attempt loses its claim
    # after this long and the delivery is due again. Keep it well above delivery_timeout.
    delivery_lease: float = 120.0
    # Comma-separated networks (CIDR) that webhooks and http steps may reach although they are
    # private, loopback or link-local, e.g. "10.1.0.0/16,127.0.0.1/32" (shared/url_guard.py).
    # Empty: only public addresses.
    allowed_networks: str = ""
    # The older setting, for webhooks only: still honoured, added to allowed_networks for them.
    webhook_allowed_networks: str = ""
    # SMTP server for notification_emails; empty host: emails fail with a message saying so.
    smtp_host: str = ""
    smtp_port: int = 25
    # "none", "starttls" or "ssl" (implicit TLS, usually port 465).
    smtp_tls: str = "none"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "flowbin@localhost"
    # A bearer token that reads GET /metrics (and nothing else), for a Prometheus scraper;
    # empty: only admins read it.
    metrics_token: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = environ.get(_env_name(field.name))
            if raw is None:
                continue
            if field.type == "Path":
                values[field.name] = Path(raw)
            elif field.type == "int":
                try:
                    values[field.name] = int(raw)
                except ValueError as exc:
                    raise ValueError(
                        f"FLOWBIN_{field.name.upper()} must be an integer, got {raw!r}"
                    ) from exc
            elif field.type == "float":
                try:
                    values[field.name] = float(raw)
                except ValueError as exc:
                    raise ValueError(
                        f"FLOWBIN_{field.name.upper()} must be a number, got {raw!r}"
                    ) from exc
            elif field.type == "bool":
                values[field.name] = _bool(raw)
            else:
                values[field.name] = raw
        return cls(**values)

    @functools.cached_property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'flowbin.db').resolve()}"

    @functools.cached_property
    def drive_root(self) -> Path:
        """The local drive folder (unused when the drive is in an object store)."""
        if self.drive_url.startswith("file://"):
            return Path(unquote(urlsplit(self.drive_url).path)).resolve()
        return (
            Path(self.drive_dir).resolve()
            if self.drive_dir
            else (self.data_dir / "drive").resolve()
        )

    @functools.cached_property
    def binary_store(self) -> Path:
        """Content-addressed snapshots of the binaries that runs execute."""
        return (self.data_dir / "binaries").resolve()

    def step_time_limit(self, requested: int | None) -> int:
        """Seconds a step may run: 0 is the platform default, -1 is "none" (still below the
        broker's visibility timeout, so a running step is never delivered twice), N is N."""
        if not requested:
            return self.default_step_timeout
        if requested < 0:
            return max(self.visibility_timeout - 60, 1)
        return min(requested, max(self.visibility_timeout - 60, 1))

    def to_env(self) -> dict[str, str]:
        """The environment that gives a child process these same settings."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ENV_NAMES and not value:
                continue  # an empty AWS_* would hide boto3's own credential chain
            env[_env_name(field.name)] = str(value)
        return env
