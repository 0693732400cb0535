"""docker-compose.yml, deploy/.env.example and the systemd units, checked as far as a
machine without Docker allows: structure, health checks, GPU reservation, and that every
command parses with the real `micheck` CLI and every MICHECK_* variable is a real setting."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from micheck.cli import build_parser
from micheck.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# read by the engine's data loaders, the CLI's logging, or compose itself (not Settings)
NOT_SETTINGS = {"DATA_DIR", "CACHE_DIR", "LOG_LEVEL", "API_PORT", "HOST_DATA_DIR",
                "FASHION_MNIST_DIR", "DEVICE"}
INTERP = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _check_env(name: str, value: str | None) -> None:
    key = name.removeprefix("MICHECK_")
    if key in NOT_SETTINGS:
        return
    assert key.lower() in Settings.model_fields, f"{name} is not a setting in service/settings.py"
    if value is not None and "$" not in value:
        Settings(**{key.lower(): value})  # the value validates


def _check_command(cmd: list[str]) -> None:
    assert cmd[0] == "micheck", cmd
    build_parser().parse_args(cmd[1:])  # exits (SystemExit) on an unknown option


def test_services_healthchecks_and_gpu(compose):
    services = compose["services"]
    assert {"redis", "postgres", "api", "worker-gpu", "worker-cpu"} <= set(services)
    for name, svc in services.items():
        if svc.get("restart") != "no":
            assert "healthcheck" in svc, f"{name} has no health check"
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--queue" in services["worker-gpu"]["command"]
    for svc in ("redis", "postgres"):
        assert any(v.split(":")[0] in compose["volumes"] for v in services[svc]["volumes"])
    for name in ("api", "worker-gpu", "worker-cpu"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_commands_and_env_are_real(compose):
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for svc in compose["services"].values():
        if svc.get("command") and svc["command"][0] == "micheck":
            _check_command(svc["command"])
        for key, value in (svc.get("environment") or {}).items():
            if key.startswith("MICHECK_"):
                m = INTERP.fullmatch(value or "")
                _check_env(key, m.group(2) if m and m.group(2) is not None else value)
        build = svc.get("build")
        if build:
            assert f"AS {build['target']}" in dockerfile
            assert (ROOT / build["dockerfile"]).is_file()
        hc = svc.get("healthcheck", {}).get("test", [])
        if "micheck.service.healthcheck" in hc:
            assert (ROOT / "service" / "healthcheck.py").is_file()


def test_env_example_and_systemd_units():
    for line in (ROOT / "deploy" / ".env.example").read_text().splitlines():
        if line.startswith("MICHECK_"):
            key, value = line.split("=", 1)
            _check_env(key, value)
    units = list((ROOT / "deploy" / "systemd").glob("*.service"))
    assert any(u.name == "micheck-worker@.service" for u in units)
    for unit in units:
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                cmd = shlex.split(line.split("=", 1)[1].replace("%i", "0").replace("%H", "h"))
                _check_command(["micheck", *cmd[1:]])
                assert cmd[0].endswith("/micheck")


def test_ci_postgres_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "ci-postgres.sh")], check=True)


def _has_compose() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no docker compose on this machine")
def test_docker_compose_config(tmp_path):
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=x\n")
    subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env),
                    "config", "-q"], check=True)
