"""deploy/: the files parse, point their probes at the real endpoints and ports, and harden the service.

Docker and Kubernetes cannot run here; what can be checked without them is checked: every YAML
parses, every probe and health check hits /healthz or /readyz on the port the configuration
serves them on, the Kubernetes configuration is a valid watchdog configuration, the image runs
as a non-root user, and systemd itself verifies the units.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from watchdog.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def k8s_objects() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)]


def pod_specs() -> list[tuple[str, dict]]:
    found = []
    for obj in k8s_objects():
        kind = obj["kind"]
        if kind in ("Deployment", "Job"):
            found.append((obj["metadata"]["name"], obj["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            found.append((obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return found


@pytest.fixture
def k8s_settings(tmp_path, monkeypatch):
    """The ConfigMap's TOML with the Secret's variables: what a pod would load."""
    monkeypatch.chdir(tmp_path)
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")
    secret = next(o for o in k8s_objects() if o["kind"] == "Secret")
    path = tmp_path / "watchdog.toml"
    path.write_text(config["data"]["watchdog.toml"], encoding="utf-8")
    for key, value in secret["stringData"].items():
        monkeypatch.setenv(key, value)
    return load_settings(path)


def test_every_yaml_file_in_deploy_parses():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 6
    for path in files:
        assert yaml_docs(path), f"{path} is empty"


def test_the_kubernetes_configuration_is_a_valid_watchdog_configuration(k8s_settings):
    assert k8s_settings.smtp.mode == "starttls" and k8s_settings.smtp.password is not None
    assert k8s_settings.database_url_value.startswith("postgresql+psycopg://")
    assert k8s_settings.http.host == "0.0.0.0"


def test_kubernetes_probes_hit_the_real_endpoints_on_the_configured_ports(k8s_settings):
    ports_by_command = {"run": k8s_settings.http.health_port, "serve": k8s_settings.http.port}
    probed = set()
    for name, spec in pod_specs():
        for container in spec["containers"]:
            command = [a for a in container["args"] if not a.startswith("-") and not a.endswith(".toml")][0]
            named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                get = probe["httpGet"]
                assert get["path"] == ("/readyz" if kind == "readinessProbe" else "/healthz"), (name, kind)
                port = named.get(get["port"], get["port"])
                assert port == ports_by_command[command], (name, kind, port)
                probed.add((command, kind))
            # Every pod: non-root, no privilege escalation, read-only root file system.
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"secretRef": {"name": "watchdog-secrets"}} in container["envFrom"]
    assert {("run", "livenessProbe"), ("run", "readinessProbe"), ("serve", "readinessProbe")} <= probed


def test_the_daemon_runs_replicated_and_the_cronjob_variant_runs_tick():
    objects = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects() if "metadata" in o}
    assert objects[("Deployment", "watchdog")]["spec"]["replicas"] >= 2
    cron = objects[("CronJob", "watchdog-tick")]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"] == "Europe/Copenhagen"
    args = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    # Every run reports under one stable replica name: the CronJob's pods are each named anew.
    assert args[args.index("tick"):] == ["tick", "--replica", "watchdog-tick"]
    assert objects[("Job", "watchdog-migrate")]["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "db", "upgrade"]


def test_compose_has_postgres_a_mail_catcher_replicas_and_health_checks_on_the_right_ports():
    compose = yaml_docs(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert {"postgres", "mailpit", "migrate", "watchdog", "api"} <= set(services)
    assert services["watchdog"]["deploy"]["replicas"] >= 2
    env = services["watchdog"]["environment"]
    assert env["WATCHDOG_SMTP__HOST"] == "mailpit" and env["WATCHDOG_SMTP__PORT"] == "1025"
    health_port = env["WATCHDOG_HTTP__HEALTH_PORT"]
    assert f"127.0.0.1:{health_port}/healthz" in " ".join(services["watchdog"]["healthcheck"]["test"])
    api_port = services["api"]["environment"]["WATCHDOG_HTTP__PORT"]
    assert f"127.0.0.1:{api_port}/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["watchdog"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # No secret in the compose file itself.
    assert "PASSWORD=" not in (DEPLOY / "compose.yaml").read_text().replace("PASSWORD_FILE", "")


def test_the_image_is_slim_and_runs_as_a_non_root_user():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases and all("slim" in b for b in bases)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE\s+.*\b9108\b", text, re.M) and re.search(r"^EXPOSE\s+.*\b8080\b", text, re.M)
    assert "/healthz" in text and 'ENTRYPOINT ["watchdog"]' in text


def unit_keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


@pytest.mark.parametrize("unit", ["watchdog.service", "watchdog-serve.service"])
def test_the_systemd_units_restart_always_read_an_environment_file_and_are_hardened(unit):
    keys = unit_keys(DEPLOY / "systemd" / unit)
    assert keys["Restart"] == ["always"]
    assert keys["EnvironmentFile"] == ["/etc/watchdog/watchdog.env"]
    for key, value in [("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("User", "watchdog"), ("UMask", "0077")]:
        assert keys[key] == [value], key
    assert keys["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["watchdog.service", "watchdog-serve.service"])
def test_systemd_verifies_the_units_without_a_warning(unit, tmp_path):
    # The unit names /opt/watchdog/bin/watchdog; point it at this environment's script to verify.
    script = Path(sys.executable).parent / "watchdog"
    copy = tmp_path / unit
    copy.write_text((DEPLOY / "systemd" / unit).read_text().replace("/opt/watchdog/bin/watchdog", str(script)))
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if str(copy) in line or unit in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
