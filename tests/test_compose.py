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
from zapflow.worker.registry import ROLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"
ALERTS_FILE = ROOT / "deploy" / "prometheus-alerts.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"

# the Temporal roles (and the embedder)
WORKER_SERVICES = ("worker", "worker-ai", "worker-flows", "worker-campaigns")
APP_SERVICES = ("api", *WORKER_SERVICES, "embedder", "migrate", "temporal-setup")
ONE_SHOT_SERVICES = ("migrate", "temporal-setup")
LONG_RUNNING_SERVICES = ("api", *WORKER_SERVICES)
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
    for name in ("api", "migrate", "temporal-setup"):
        assert _command(services[name]) == [name], name
    assert _command(services["embedder"]) == ["worker", "--role", "embeddings"]


def test_each_worker_role_is_its_own_service() -> None:
    """Sends and persists never share an activity pool with the model, AI calls or tenants'
    URLs: one service per worker role."""
    services = _services()
    commands = {name: _command(services[name]) for name in WORKER_SERVICES}
    assert commands == {
        "worker": ["worker", "--role", "pipeline"],
        "worker-ai": ["worker", "--role", "ai"],
        "worker-flows": ["worker", "--role", "flows"],
        "worker-campaigns": ["worker", "--role", "campaigns"],
    }
    assert {command[-1] for command in commands.values()} == set(ROLES)  # every role runs


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


def test_embedder_waits_for_migrations_and_postgres_only() -> None:
    embedder = _services()["embedder"]
    assert _depends_on(embedder) == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
    }
    test = " ".join(map(str, embedder["healthcheck"]["test"]))
    assert f":{_app_env()['ZAPFLOW_EMBEDDER_METRICS_PORT']}/metrics" in test


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
    for worker in WORKER_SERVICES:
        assert f"{worker}:{env['ZAPFLOW_WORKER_METRICS_PORT']}" in targets
    assert f"embedder:{env['ZAPFLOW_EMBEDDER_METRICS_PORT']}" in targets
    assert config["global"]["scrape_interval"] == "15s"
    mount = " ".join(map(str, _services()["prometheus"]["volumes"]))
    assert "deploy/prometheus.yml" in mount


def test_prometheus_scrapes_the_api_with_the_metrics_token() -> None:
    """The API's /metrics is not public: Prometheus presents ZAPFLOW_METRICS_TOKEN, which the
    compose file takes from the environment with no default, as the API does."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    [api_job] = [job for job in config["scrape_configs"] if job["job_name"] == "zapflow-api"]
    path = api_job["authorization"]["credentials_file"]
    assert path == "/run/secrets/metrics_token"
    assert "metrics_token" in _services()["prometheus"]["secrets"]
    assert _compose()["secrets"]["metrics_token"] == {"environment": "ZAPFLOW_METRICS_TOKEN"}
    assert re.fullmatch(r"\$\{ZAPFLOW_METRICS_TOKEN:\?.+\}", _app_env()["ZAPFLOW_METRICS_TOKEN"])


def test_grafanas_admin_password_comes_from_the_environment_with_no_default() -> None:
    password = _env(_services()["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", password), password


def test_grafana_provisioning_and_dashboard_are_valid() -> None:
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/zapflow.yml").read_text())
    assert providers["providers"]
    uids = _datasource_uids()
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and dashboard["title"]
    panels = _query_panels(dashboard)
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable["datasource"]["uid"] in uids, variable["name"]


# --- the Grafana dashboard ------------------------------------------------------------------

# Every metric the dashboard may query, by who exports it. A name missing here is a typo or a
# metric nobody exports; test_allowed_metrics_are_exported checks this list against the code.
API_METRICS = frozenset(
    {
        # starlette-prometheus's collectors, fed by zapflow.api.metrics.RouteMetrics
        "starlette_requests_total",
        "starlette_responses_total",
        "starlette_requests_processing_time_seconds_bucket",
        "starlette_requests_processing_time_seconds_sum",
        "starlette_requests_processing_time_seconds_count",
        "starlette_exceptions_total",
        # zapflow's own prometheus_client collectors in the API process
        "zapflow_webhook_ack_seconds_bucket",
        "zapflow_webhook_ack_seconds_sum",
        "zapflow_webhook_ack_seconds_count",
        "zapflow_inbox_pending",
        "zapflow_inbox_oldest_pending_age_seconds",
        "zapflow_queue_backlog",
        "zapflow_queue_pollers",
        "zapflow_sse_connections_open",
        "zapflow_cache_lookups_total",
        "zapflow_rate_limited_total",
        "zapflow_event_loop_lag_seconds",
    }
)
# prometheus_client's process collector: the API only (the worker's SDK exporter has none)
PROCESS_METRICS = frozenset({"process_resident_memory_bytes", "process_cpu_seconds_total"})
# The worker's metrics go through the Temporal SDK's exporter: counters carry no `_total`,
# histograms keep the name they were created with (no unit suffix), durations of the SDK's own
# metrics are integer milliseconds.
WORKER_METRICS = frozenset(
    {
        "zapflow_activity_outcomes",
        "zapflow_relay_events",
        "zapflow_relay_stores",
        "zapflow_relay_quiet_conversations",
        "zapflow_message_event_latency_bucket",
        "zapflow_message_event_latency_sum",
        "zapflow_message_event_latency_count",
    }
)
TEMPORAL_SDK_METRICS = frozenset(
    {
        "temporal_workflow_task_execution_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_activity_execution_failed",
        "temporal_workflow_task_execution_failed",
        "temporal_long_request_failure",
        "temporal_request_failure",
        "temporal_num_pollers",
        "temporal_worker_task_slots_available",
    }
)
# the embedder's prometheus_client collectors (zapflow/worker/embedder.py)
EMBEDDER_METRICS = frozenset(
    {
        "zapflow_embedding_backlog",
        "zapflow_embedding_oldest_age_seconds",
        "zapflow_embedding_messages_total",
    }
)
ALLOWED_METRICS = (
    API_METRICS
    | PROCESS_METRICS
    | WORKER_METRICS
    | EMBEDDER_METRICS
    | TEMPORAL_SDK_METRICS
    | frozenset({"up"})
)
DASHBOARD_ROWS = ("API", "Webhooks", "Pipeline", "Live", "Process")

_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# an identifier that is not part of a number or a variable and is not called like a function
_PROMQL_IDENTIFIER = re.compile(r"(?<![\w.$:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_HISTOGRAM_SUFFIX = re.compile(r"_(?:bucket|sum|count)$")


def _datasource_uids() -> set[str]:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text()
    )
    return {ds["uid"] for ds in datasources["datasources"]}


def _dashboard() -> dict[str, Any]:
    data = json.loads((GRAFANA_DIR / "zapflow.json").read_text())
    assert isinstance(data, dict)
    return data


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included; a collapsed row keeps its panels inside it."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in _all_panels(dashboard) if panel["type"] != "row"]


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel.get("targets", []) if target.get("expr")]


def _promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions and keywords dropped)."""
    expr = _PROMQL_STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range and subquery windows
    expr = _PROMQL_GROUPING.sub(" ", expr)
    return {
        name for name in _PROMQL_IDENTIFIER.findall(expr) if name.lower() not in _PROMQL_KEYWORDS
    }


def _thresholds(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return {step["value"] for step in steps if step["value"] is not None}


def _panels_querying(dashboard: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return [
        panel
        for panel in _query_panels(dashboard)
        if any(metric in _promql_metric_names(expr) for expr in _exprs(panel))
    ]


def test_promql_metric_names_finds_only_metrics() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, path_template) "
        '(rate(starlette_requests_processing_time_seconds_bucket{instance=~"$instance"}'
        "[$__rate_interval])))"
    )
    assert _promql_metric_names(expr) == {"starlette_requests_processing_time_seconds_bucket"}
    expr = (
        '(sum(rate(a_total{code=~"5.."}[5m])) or vector(0)) / sum without (x) (rate(b[1m]))'
        " > bool 1e-3"
    )
    assert _promql_metric_names(expr) == {"a_total", "b"}
    assert _promql_metric_names("up") == {"up"}


def test_dashboard_has_the_operator_rows() -> None:
    rows = [panel["title"] for panel in _all_panels(_dashboard()) if panel["type"] == "row"]
    missing = [title for title in DASHBOARD_ROWS if not any(row.startswith(title) for row in rows)]
    assert not missing, f"dashboard rows missing: {missing}"


def test_every_dashboard_panel_has_title_description_unit_and_a_query() -> None:
    for panel in _query_panels(_dashboard()):
        title = panel.get("title")
        assert title, f"panel {panel.get('id')} has no title"
        assert panel.get("description"), f"{title}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert _exprs(panel), f"{title}: no target with an expr"
        assert all(target.get("refId") for target in panel["targets"]), title


def test_dashboard_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _all_panels(_dashboard())]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate panel ids: {duplicates}"


def test_dashboard_panels_do_not_overlap() -> None:
    dashboard = _dashboard()
    # what Grafana lays out together: the top level, and each collapsed row's own panels
    layers = [dashboard["panels"]] + [
        row["panels"] for row in dashboard["panels"] if row["type"] == "row" and row["panels"]
    ]
    for layer in layers:
        boxes = []
        for panel in layer:
            pos = panel["gridPos"]
            x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0, panel["title"]
            assert x + w <= 24, f"{panel['title']} is wider than the 24-column grid"
            boxes.append((panel["title"], x, y, w, h))
        for i, (title, x, y, w, h) in enumerate(boxes):
            for other, ox, oy, ow, oh in boxes[i + 1 :]:
                overlap = x < ox + ow and ox < x + w and y < oy + oh and oy < y + h
                assert not overlap, f"{title!r} overlaps {other!r}"


def test_dashboard_queries_only_exported_metrics() -> None:
    unknown = {}
    for panel in _query_panels(_dashboard()):
        for expr in _exprs(panel):
            names = _promql_metric_names(expr)
            assert names, f"{panel['title']}: no metric found in {expr!r}"
            if names - ALLOWED_METRICS:
                unknown[panel["title"]] = sorted(names - ALLOWED_METRICS)
    assert not unknown, f"metrics nobody exports (or add them to ALLOWED_METRICS): {unknown}"


def test_allowed_metrics_are_exported() -> None:
    import prometheus_client
    import starlette_prometheus.middleware
    import temporalio.bridge

    # names declared in zapflow's and starlette-prometheus's code
    sources = [path.read_text() for path in (ROOT / "zapflow").rglob("*.py")]
    sources.append(Path(starlette_prometheus.middleware.__file__).read_text())
    declared = "\n".join(sources)
    for name in API_METRICS | WORKER_METRICS | EMBEDDER_METRICS:
        base = _HISTOGRAM_SUFFIX.sub("", name)
        if name in EMBEDDER_METRICS:  # prometheus_client adds a counter's _total
            base = base.removesuffix("_total")
        assert f'"{base}"' in declared, f"no collector named {base!r}"
    # the SDK's counters get no _total suffix: zapflow's exporter keeps the default
    assert "counters_total_suffix" not in declared
    assert not any(name.endswith("_total") for name in WORKER_METRICS | TEMPORAL_SDK_METRICS)
    # prometheus_client's default registry exports the process metrics
    exposition = prometheus_client.generate_latest().decode()
    for name in PROCESS_METRICS:
        assert re.search(rf"^{name} ", exposition, re.M), name
    # the Temporal SDK's metric names are compiled into its Core bridge
    bridge = next(Path(temporalio.bridge.__file__).parent.glob("temporal_sdk_bridge*"))
    core = bridge.read_bytes()
    for name in TEMPORAL_SDK_METRICS:
        base = _HISTOGRAM_SUFFIX.sub("", name).removeprefix("temporal_")
        assert base.encode() in core, f"the Temporal SDK has no metric {base!r}"


def test_dashboard_jobs_are_the_scraped_jobs() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    dashboard = _dashboard()
    texts = [expr for panel in _query_panels(dashboard) for expr in _exprs(panel)]
    texts += [str(v.get("definition", "")) for v in dashboard["templating"]["list"]]
    used = {
        job
        for text in texts
        for pattern in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', text)
        for job in pattern.split("|")
    }
    assert used, "no panel selects a job"
    assert used <= jobs, f"jobs Prometheus does not scrape: {used - jobs}"


def test_dashboard_thresholds_follow_the_settings() -> None:
    fields = Settings.model_fields
    dashboard = _dashboard()
    backlog = {fields["queue_warning_backlog"].default, fields["queue_critical_backlog"].default}
    expected = {
        "zapflow_inbox_pending": backlog,
        "zapflow_queue_backlog": backlog,
        "zapflow_event_loop_lag_seconds": {fields["event_loop_lag_warning_ms"].default / 1000},
        "process_resident_memory_bytes": {fields["memory_warning_mb"].default * 2**20},
    }
    for metric, values in expected.items():
        panels = _panels_querying(dashboard, metric)
        assert panels, f"no panel shows {metric}"
        for panel in panels:
            assert values <= _thresholds(panel), f"{panel['title']}: thresholds {values}"


# --- alerting rules -------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_prometheus_loads_the_alerting_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    mounts = [str(v).split(":")[:2] for v in _services()["prometheus"]["volumes"]]
    [target] = [container for host, container in mounts if host == "./deploy/prometheus-alerts.yml"]
    assert config["rule_files"] == [target]


def test_every_alert_is_complete_and_queries_only_exported_metrics() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) >= 8, names
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0s"))), name
        metrics = _promql_metric_names(rule["expr"])
        assert metrics and metrics <= ALLOWED_METRICS, f"{name}: {metrics - ALLOWED_METRICS}"
        # a comparison makes it fire on some values only
        assert re.search(r"(==|>|<)\s*[\d.]+\s*$", rule["expr"].strip()), name


def test_alert_label_matchers_name_labels_the_metrics_carry() -> None:
    """A matcher on a label the metric never has would never fire."""
    carried = {
        "zapflow_relay_stores": {"outcome"},
        "zapflow_activity_outcomes": {"outcome", "activity_type", "failure_type"},
        "starlette_responses_total": {"method", "path_template", "status_code"},
        "up": {"job", "instance"},
    }
    # and the values matched are ones the code writes
    assert '_count_stores("fallback"' in (ROOT / "zapflow/worker/relay.py").read_text()
    assert '"outcome": "failed"' in (ROOT / "zapflow/worker/metrics.py").read_text()
    for rule in _alert_rules():
        for metric, matchers in re.findall(r"([a-z_]+)\{([^}]*)\}", rule["expr"]):
            labels = {m.split("=")[0].strip().rstrip("!~") for m in matchers.split(",")}
            assert labels <= carried[metric], f"{rule['alert']}: {labels - carried[metric]}"
