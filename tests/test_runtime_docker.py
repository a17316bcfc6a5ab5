"""docker/: the Dockerfiles pass hadolint, and the compose file runs both nodes as the docs say.

No Docker engine runs here: images are not built in the tests (see docs/deployment.md)."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def test_dockerfiles_pass_hadolint():
    hadolint = Path(sys.executable).with_name("hadolint")
    files = sorted(DOCKER.glob("Dockerfile.*"))
    assert {f.name for f in files} == {"Dockerfile.system1", "Dockerfile.system2"}
    r = subprocess.run(
        [str(hadolint), "--config", str(DOCKER / "hadolint.yaml"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfiles_run_the_right_node():
    s2 = (DOCKER / "Dockerfile.system2").read_text()
    s1 = (DOCKER / "Dockerfile.system1").read_text()
    assert s2.startswith("#") and "FROM nvidia/cuda:" in s2 and '"serve", "system2"' in s2
    assert "FROM python:3.11" in s1 and '"serve", "system1"' in s1 and "whl/cpu" in s1
    for text in (s1, s2):
        assert "COPY deploy" in text and "USER 10001" in text


def test_compose_runs_both_nodes_over_a_shared_ipc_volume():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"system2", "system1"}
    assert services["system2"]["build"]["dockerfile"] == "docker/Dockerfile.system2"
    assert services["system1"]["build"]["dockerfile"] == "docker/Dockerfile.system1"
    assert services["system1"]["depends_on"] == ["system2"]
    gpu = services["system2"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for svc in services.values():
        assert "hume-sockets:/run/hume" in svc["volumes"]
        context = (DOCKER / svc["build"]["context"]).resolve()
        assert (context / svc["build"]["dockerfile"]).is_file()
    assert "hume-sockets" in compose["volumes"]
