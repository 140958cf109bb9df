"""Static checks of the container deployment: docker-compose.yml, Dockerfile, deploy/.

No Docker engine is needed: the files are parsed and cross-checked against each other and
against zapflow's Settings, so a renamed setting or a moved port fails here, not at `up`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from zapflow.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"

APP_SERVICES = ("api", "worker", "migrate", "temporal-setup")
ONE_SHOT_SERVICES = ("migrate", "temporal-setup")
LONG_RUNNING_SERVICES = ("api", "worker")
REQUIRED_SERVICES = ("postgres", "redis", "temporal", "temporal-ui", *APP_SERVICES)


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _app_env() -> dict[str, str]:
    return _env(_services()["api"])


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _container_port(mapping: str | int | dict[str, Any]) -> int:
    if isinstance(mapping, dict):
        return int(mapping["target"])
    return int(str(mapping).split("/")[0].rsplit(":", 1)[-1])


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return command.split() if isinstance(command, str) else list(command or [])


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        pairs.append((instruction.upper(), args.strip()))
    return pairs


# --- services -------------------------------------------------------------------------------


def test_compose_has_no_obsolete_version_key() -> None:
    assert "version" not in _compose()


def test_every_needed_service_exists() -> None:
    services = _services()
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services: {missing}"


def test_postgres_image_has_pgvector() -> None:
    assert "pgvector" in _services()["postgres"]["image"]


def test_app_services_share_image_build_and_environment() -> None:
    services = _services()
    reference = services["api"]
    assert reference.get("build"), "the zapflow services must build the repo's Dockerfile"
    for name in APP_SERVICES:
        service = services[name]
        assert service.get("image") == reference.get("image"), name
        assert service.get("build") == reference.get("build"), name
        assert _env(service) == _env(reference), f"{name} has a different environment than api"


def test_app_services_run_their_role() -> None:
    services = _services()
    for name in APP_SERVICES:
        assert _command(services[name]) == [name], name


def test_one_shot_services_do_not_restart() -> None:
    # Unquoted `no` would be YAML for false; compose wants the string.
    services = _services()
    for name in ONE_SHOT_SERVICES:
        assert services[name].get("restart") == "no", name


# --- settings -------------------------------------------------------------------------------


def test_every_zapflow_variable_is_a_settings_field() -> None:
    env = _app_env()
    zapflow_keys = [key for key in env if key.startswith("ZAPFLOW_")]
    assert zapflow_keys, "the zapflow services set no ZAPFLOW_* variables"
    fields = set(Settings.model_fields)
    unknown = [key for key in zapflow_keys if key.removeprefix("ZAPFLOW_").lower() not in fields]
    assert not unknown, f"not fields of zapflow.config.Settings: {unknown}"


def test_compose_environment_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ZAPFLOW_"):
            monkeypatch.delenv(key)
    env = _app_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    settings = load_settings(_env_file=None)

    for key, value in env.items():
        if key.startswith("ZAPFLOW_"):
            loaded = getattr(settings, key.removeprefix("ZAPFLOW_").lower())
            assert str(loaded) == value, key


def test_database_url_points_at_postgres_service() -> None:
    services = _services()
    url = urlsplit(_app_env()["ZAPFLOW_DATABASE_URL"])
    assert url.scheme in ("postgresql+asyncpg", "postgresql")
    assert url.hostname == "postgres" and "postgres" in services
    assert url.port == 5432
    pg_env = _env(services["postgres"])
    assert url.username == pg_env["POSTGRES_USER"]
    assert url.password == pg_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_redis_url_points_at_redis_service() -> None:
    url = urlsplit(_app_env()["ZAPFLOW_REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis" and "redis" in _services()
    assert url.port == 6379


def test_temporal_address_points_at_temporal_service() -> None:
    services = _services()
    env = _app_env()
    assert _host_port(env["ZAPFLOW_TEMPORAL_ADDRESS"]) == ("temporal", 7233)
    assert "temporal" in services
    assert _env(services["temporal-ui"])["TEMPORAL_ADDRESS"] == env["ZAPFLOW_TEMPORAL_ADDRESS"]
    namespace = env.get("ZAPFLOW_TEMPORAL_NAMESPACE", "default")
    assert _env(services["temporal"]).get("DEFAULT_NAMESPACE", "default") == namespace


def test_temporal_uses_the_postgres_service() -> None:
    services = _services()
    temporal_env = _env(services["temporal"])
    pg_env = _env(services["postgres"])
    assert temporal_env["DB"] == "postgres12"
    assert temporal_env["POSTGRES_SEEDS"] == "postgres"
    assert temporal_env["POSTGRES_USER"] == pg_env["POSTGRES_USER"]
    assert temporal_env["POSTGRES_PWD"] == pg_env["POSTGRES_PASSWORD"]
    # its own databases, not zapflow's
    assert pg_env["POSTGRES_DB"] not in (
        temporal_env.get("DBNAME", "temporal"),
        temporal_env.get("VISIBILITY_DBNAME", "temporal_visibility"),
    )
    assert _depends_on(services["temporal"]).get("postgres") == "service_healthy"


# --- start-up order and health --------------------------------------------------------------


def test_api_and_worker_wait_for_migrations_and_healthy_services() -> None:
    services = _services()
    for name in LONG_RUNNING_SERVICES:
        deps = _depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("temporal-setup") == "service_completed_successfully", name
        for other in ("postgres", "redis", "temporal"):
            assert deps.get(other) == "service_healthy", f"{name} → {other}"


def test_one_shot_services_wait_for_what_they_use() -> None:
    services = _services()
    assert _depends_on(services["migrate"]).get("postgres") == "service_healthy"
    assert _depends_on(services["temporal-setup"]).get("temporal") == "service_healthy"


def test_every_depended_on_service_can_report_what_is_awaited() -> None:
    services = _services()
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            target = services[dependency]
            if condition == "service_healthy":
                healthcheck = target.get("healthcheck") or {}
                assert healthcheck.get("test") and not healthcheck.get("disable"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} must run once and exit"


def test_api_healthcheck_uses_readiness_on_the_api_port() -> None:
    services = _services()
    test = " ".join(map(str, services["api"]["healthcheck"]["test"]))
    assert f":{_app_env()['ZAPFLOW_API_PORT']}/readyz" in test
    worker_test = " ".join(map(str, services["worker"]["healthcheck"]["test"]))
    assert f":{_app_env()['ZAPFLOW_WORKER_METRICS_PORT']}/" in worker_test


def test_api_publishes_its_port() -> None:
    ports = [_container_port(p) for p in _services()["api"].get("ports", [])]
    assert int(_app_env()["ZAPFLOW_API_PORT"]) in ports


def test_named_volumes_are_declared_and_used() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    assert {"postgres-data", "redis-data", "grafana-data"} <= declared
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used <= declared, f"undeclared named volumes: {used - declared}"
    assert declared <= used, f"declared but unused volumes: {declared - used}"


def test_bind_mounted_files_exist() -> None:
    for service in _services().values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_runs_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(froms) > 1, "the Dockerfile should build in one stage and run in another"
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users, "the Dockerfile sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    # the USER belongs to the final stage
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    last_user = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "USER")
    assert last_user > last_from


def test_dockerfile_entrypoint_is_the_cli() -> None:
    instructions = dict(_dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["zapflow"]
    assert json.loads(instructions["CMD"]) == ["api"]
    assert "/healthz" in instructions["HEALTHCHECK"]


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".git", ".venv", ".env", ".zapflow"):
        assert needed in patterns, needed


# --- observability --------------------------------------------------------------------------


def test_prometheus_scrapes_api_and_worker_ports() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    env = _app_env()
    assert f"api:{env['ZAPFLOW_API_PORT']}" in targets
    assert f"worker:{env['ZAPFLOW_WORKER_METRICS_PORT']}" in targets
    assert config["global"]["scrape_interval"] == "15s"
    mount = " ".join(map(str, _services()["prometheus"]["volumes"]))
    assert "deploy/prometheus.yml" in mount


def test_grafana_provisioning_and_dashboard_are_valid() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text()
    )
    uids = {ds["uid"] for ds in datasources["datasources"]}
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/zapflow.yml").read_text())
    assert providers["providers"]
    dashboard = json.loads((GRAFANA_DIR / "zapflow.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]
