"""docker/: the Dockerfiles pass hadolint and start their node with arguments the CLI accepts, and the
compose file runs both nodes as the docs say.

No Docker engine runs here: images are not built in the tests (see docs/deployment.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hume.config import parse_config
from hume.runtime.config import DeployConfig
from hume.runtime.transport import check_endpoint

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


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile as (INSTRUCTION, arguments) in order: comments dropped, continuations joined.
    (hadolint lints but prints no parse; our Dockerfiles use nothing this reader does not know.)"""
    out, parts = [], []
    for line in path.read_text().splitlines():
        if not parts and (not line.strip() or line.lstrip().startswith("#")):
            continue
        parts.append(line.strip().removesuffix("\\").strip())
        if not line.rstrip().endswith("\\"):
            name, _, args = " ".join(parts).partition(" ")
            out.append((name.upper(), args))
            parts = []
    return out


def _exec_form(args: str) -> list[str]:
    form = json.loads(args)  # the shell form would run the node under /bin/sh, deaf to SIGTERM
    assert isinstance(form, list) and all(isinstance(a, str) for a in form), args
    return form


@pytest.mark.parametrize(("node", "base"), [("system1", "python:3.11"), ("system2", "nvidia/cuda:")])
def test_dockerfile_runs_its_node_as_a_user_with_a_command_line_the_cli_accepts(node, base, monkeypatch):
    steps = instructions(DOCKER / f"Dockerfile.{node}")
    names = [name for name, _ in steps]
    assert names.count("FROM") == 1 and steps[0][0] == "FROM" and steps[0][1].startswith(base)
    assert "EXPOSE" not in names, "the nodes talk over ipc:// in a shared volume; nothing listens"
    # The project is installed after every package it ships is copied in; the final user is not root.
    install = next(i for i, (name, args) in enumerate(steps) if name == "RUN" and "pip install ." in args)
    copied = {args.split()[0] for name, args in steps[:install] if name == "COPY"}
    assert {"hume", "sim", "deploy", "configs", "pyproject.toml"} <= copied
    user = max(i for i, name in enumerate(names) if name == "USER")
    assert steps[user][1] == "10001" and "RUN" not in names[user:]
    (entrypoint,) = [_exec_form(args) for name, args in steps if name == "ENTRYPOINT"]
    (cmd,) = [_exec_form(args) for name, args in steps if name == "CMD"]
    assert entrypoint == ["hume", "serve", node]
    # The default arguments parse as `hume serve` parses them (WORKDIR /app holds the repository's
    # configs/), and point at the paths compose.yaml mounts.
    monkeypatch.chdir(ROOT)
    cfg = parse_config(DeployConfig, cmd)
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"][node]
    mounts = {volume.split(":")[1] for volume in compose["volumes"]}
    assert {cfg.checkpoint, cfg.output, "/run/hume"} <= mounts
    for endpoint in cfg.transport.endpoints():
        assert endpoint.startswith("ipc:///run/hume/")
        check_endpoint(endpoint, secure=False)
    assert cfg.device == ("cuda" if node == "system2" else "cpu")


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
