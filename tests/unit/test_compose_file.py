"""docker-compose.yml, the production shape: redis, postgres, an object store for the drive, one
api, a scalable worker, one beat, flower; every Flowbin service on the object store and none
sharing a drive folder. Read as YAML here; checked by `docker compose config` where docker can
(it is only a client here: the test skips, saying why, where it cannot)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
FLOWBIN_SERVICES = ("migrate", "api", "worker", "beat", "flower")
# What .env must give (docker-compose.yml's header says so).
ENV = {
    "FLOWBIN_ADMIN_TOKEN": "fb_compose_test_token_0123456789",
    "POSTGRES_PASSWORD": "compose-test",
    "AWS_ACCESS_KEY_ID": "compose-test",
    "AWS_SECRET_ACCESS_KEY": "compose-test-secret",
}


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]


def default_of(value: str) -> str:
    """The value of ``${NAME:-default}`` (or ``${NAME-default}``) when NAME is not set."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:?-(.*)\}", value)
    return match.group(1) if match else value


def test_the_file_has_every_service_of_the_production_shape():
    found = services()
    assert {"redis", "postgres", "seaweedfs", *FLOWBIN_SERVICES} <= set(found)
    store = found["seaweedfs"]
    assert store["image"].startswith("chrislusf/seaweedfs:")
    assert store["command"][0] == "server" and "-s3" in store["command"]
    assert "-s3.port=8333" in store["command"]
    # `--scale worker=4` needs a worker with no fixed name and no published port.
    assert "container_name" not in found["worker"] and "ports" not in found["worker"]


def test_every_flowbin_service_keeps_its_drive_in_the_object_store_and_shares_no_folder():
    found = services()
    for name in FLOWBIN_SERVICES:
        environment = found[name]["environment"]
        assert default_of(environment["FLOWBIN_DRIVE_URL"]).startswith("s3://"), name
        assert default_of(environment["FLOWBIN_S3_ENDPOINT_URL"]) == "http://seaweedfs:8333"
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(environment)
        assert "FLOWBIN_DRIVE_DIR" not in environment, name
        mounted = [volume.split(":")[1] for volume in found[name].get("volumes", [])]
        assert "/srv/flowbin/drive" not in mounted, name
        assert found[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert "volumes" not in found["worker"]  # a worker on any host needs no folder at all


def compose_client() -> list[str]:
    for command in (["docker", "compose"], ["docker-compose"]):
        try:
            done = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return command
    pytest.skip("neither `docker compose` nor `docker-compose` can run here to check the file")


def test_docker_compose_config_accepts_the_file():
    command = compose_client()
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **ENV},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]  # the file as compose resolved it
    for name in FLOWBIN_SERVICES:
        assert resolved[name]["environment"]["FLOWBIN_DRIVE_URL"] == "s3://flowbin"
