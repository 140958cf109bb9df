"""Settings: the one place that reads the environment (prefix ``ZAPFLOW_``, or a ``.env`` file).

Defaults point at the embedded stack that ``zapflow dev`` starts, so ``zapflow api`` and
``zapflow worker`` run beside it with no configuration; setting the URLs points them at external
services (the docker-compose and production path).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_POSTGRES_PORT = 54329
DEV_REDIS_PORT = 63790
DEV_TEMPORAL_PORT = 7233
_ADDRESS_OR_NAME = re.compile(r"\[?[0-9A-Za-z.:_%-]+\]?(/\d{1,3})?")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZAPFLOW_", env_file=".env", extra="ignore", validate_default=True
    )

    # external services
    database_url: str = f"postgresql+asyncpg://postgres@127.0.0.1:{DEV_POSTGRES_PORT}/zapflow"
    database_pool_size: int = Field(20, ge=1, le=500)
    database_max_overflow: int = Field(10, ge=0, le=500)
    redis_url: str = f"redis://127.0.0.1:{DEV_REDIS_PORT}/0"
    temporal_address: str = f"127.0.0.1:{DEV_TEMPORAL_PORT}"
    temporal_namespace: str = "default"

    # task queues and their worker concurrency (the seed's *_WORKER_CONCURRENCY)
    messages_task_queue: str = "messages"
    embeddings_task_queue: str = "embeddings"
    flows_task_queue: str = "flows"
    followups_task_queue: str = "followups"
    ai_task_queue: str = "ai"  # the AI agent's and flows' model calls (worker role ai)
    # broadcasts' workflows and sends (worker role campaigns), apart from conversations' sends
    campaigns_task_queue: str = "campaigns"
    campaign_worker_concurrency: int = Field(4, ge=1, le=100)
    # the window of a number's messaging tier (Meta: a rolling 24 hours; shorter in tests)
    campaign_tier_window_seconds: float = Field(86_400, gt=0)
    # Cloud API numbers' templates are synced from the Graph API this often (a Temporal Schedule)
    template_sync_seconds: float = Field(3600, ge=10)
    # uploaded files nothing names are deleted this long after their upload, swept this often
    media_retention_days: float = Field(30, gt=0)
    media_retention_sweep_seconds: float = Field(3600, ge=10)
    message_worker_concurrency: int = Field(10, ge=1, le=1000)
    flow_worker_concurrency: int = Field(10, ge=1, le=1000)
    ai_worker_concurrency: int = Field(10, ge=1, le=1000)
    # workflow runs a worker keeps in memory (its sticky cache): above the open conversations,
    # or each signal to an evicted one replays its whole history
    workflow_cache_size: int = Field(4000, ge=1, le=100_000)
    # run workflow code in Temporal's sandbox (worker/main.workflow_runner): on in the tests,
    # which catch a non-deterministic call there; off in workers, where it costs CPU per run
    workflow_sandbox: bool = False
    # a workflow task waits this long for the worker that holds its run in cache before any
    # worker takes it (and replays the run): how long a crashed worker's runs stall (the SDK's
    # default; the tests' killed workers use 2 s)
    workflow_sticky_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # the relay's claim on the inbox rows of a pass (worker/relay.py): it outlasts the pass's
    # Temporal calls (each given 5 s), and the rows of a relay killed mid-pass wait this long
    # for another relay (the tests' killed workers use 5 s)
    relay_lease_seconds: float = Field(30.0, ge=5, le=600)
    # the least time between the starts of a relay's passes: under load a pass takes every row
    # that arrived meanwhile (fewer, larger transactions: less CPU per message) for at most
    # this much more latency; a message arriving after a quiet spell goes at once
    relay_pass_interval_ms: int = Field(100, ge=0, le=1000)
    followup_worker_concurrency: int = Field(10, ge=1, le=1000)

    # embeddings and search (zapflow/embeddings, services/search.py)
    # e5: multilingual-e5-small (Portuguese and English); local: all-MiniLM-L6-v2 (English)
    embedding_provider: Literal["e5", "local", "openai"] = "e5"
    embedding_e5_variant: Literal["enpt", "original"] = "enpt"  # vocabulary: en+pt, or all
    embedding_batch_size: int = Field(64, ge=1, le=2048)  # texts per model call
    embedding_min_chars: int = Field(6, ge=0, le=1000)  # fewer letters/digits: not embedded
    # the vectors of the texts embedded last, kept by the embedder (~1.6 KB each): a text seen
    # again among them is not sent to the model (0: every text is)
    embedding_recent_vectors: int = Field(10_000, ge=0, le=1_000_000)
    # the embedder process (zapflow/worker/embedder.py): model calls at once, and per second
    embedding_worker_concurrency: int = Field(1, ge=1, le=64)
    embedding_rate_limit_per_second: float = Field(20.0, gt=0)
    # a claimed batch is taken over by another embedder after this (its embedder died); it
    # must outlast a model call with the openai client's own retries
    embedding_lease_seconds: float = Field(300.0, gt=0)
    # a failed model call is retried after this, doubling per attempt (5 attempts, then skipped)
    embedding_retry_seconds: float = Field(30.0, gt=0)
    # with no NOTIFY, the embedder looks this often for rows due again (retries, expired leases)
    embedding_sweep_seconds: float = Field(2.0, gt=0)
    embedder_metrics_port: int = Field(0, ge=0, le=65535)  # 0: no Prometheus endpoint
    # the embedder process's niceness (added to its parent's): on shared cores the pipeline
    # (webhook → SSE) comes first and the embedder, which may lag, takes what is left
    embedder_nice: int = Field(10, ge=0, le=19)
    # HNSW candidate list (pgvector's: 40): 200 reaches recall@10 0.97 on 100k distinct e5
    # vectors (100: 0.92), bench/results/2026-12-02-s2-search/hnsw_100k.json
    search_ef_search: int = Field(200, ge=10, le=1000)
    # any OpenAI-compatible API (embeddings with embedding_provider=openai)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    openai_embedding_model: str = "text-embedding-3-small"
    openai_timeout_seconds: float = Field(30.0, gt=0, le=300)

    # the AI agent: any OpenAI-compatible chat completions API; without a base URL it is off
    ai_base_url: str | None = None  # e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1
    ai_api_key: str | None = None
    ai_model: str = "gpt-4o-mini"  # a company's ai_settings.model overrides it
    ai_timeout_seconds: float = Field(30.0, gt=0, le=300)

    # WhatsApp providers (tests point these at a local server that plays the provider)
    cloud_api_base_url: str = "https://graph.facebook.com/v21.0"
    evolution_base_url: str = "http://127.0.0.1:8080"
    evolution_jwt_key: str | None = None
    # must stay below the send activity's timeout (workflows/policies.py SEND_TIMEOUT, 15 s)
    provider_timeout_seconds: float = Field(10.0, gt=0, le=12)

    # what tenants' outbound requests (flow http_request, media URLs) may reach besides public
    # addresses: comma-separated CIDRs, addresses or host names (zapflow/egress.py)
    egress_allow: str = ""

    # processes
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64)  # `zapflow api` processes sharing the port
    slow_request_ms: int = Field(500, ge=1)  # requests slower than this are logged as warnings
    event_loop_lag_warning_ms: int = Field(100, ge=1)
    memory_warning_mb: int = Field(500, ge=1)  # the seed's threshold
    queue_warning_backlog: int = Field(100, ge=1)  # the seed's thresholds
    queue_critical_backlog: int = Field(500, ge=1)
    # requests per minute and route group: per API key (a company's admin may change its own,
    # up to rate_limit_max_per_minute) and, over all its keys, per company
    rate_limit_per_minute: int = Field(1200, ge=1)
    rate_limit_max_per_minute: int = Field(6000, ge=1)
    company_rate_limit_per_minute: int = Field(6000, ge=1)
    # webhook deliveries per minute per instance and per company. High by default: a number at
    # Meta's default 80 messages/s each way brings ~320 deliveries/s (3 statuses per message
    # sent), and a refused delivery only comes back later; lower them to shed a flood sooner
    webhook_rate_limit_per_minute: int = Field(60_000, ge=1)
    webhook_company_rate_limit_per_minute: int = Field(120_000, ge=1)
    # how long a process may honour a revoked key when Redis cannot tell it (SECURITY.md)
    auth_cache_seconds: int = Field(30, ge=1, le=30)
    # people signed in to /app: the session cookie is Secure unless the API is served over plain
    # http (a dev machine); a session lasts at most session_days
    session_cookie_secure: bool = True
    session_days: int = Field(14, ge=1, le=90)
    # failed sign-ins per 15 minutes before an account is locked (and per client address)
    sign_in_failures_per_account: int = Field(5, ge=1)
    sign_in_failures_per_ip: int = Field(30, ge=1)
    # optional sign-in with an OpenID Connect provider (services/oidc.py): its issuer URL (the
    # discovery document is read from it; plain http only on loopback), this client's id and
    # secret, the name on the sign-in button, and the e-mail domains it may sign in
    # (comma-separated; empty: any). It signs in existing users only, never creates one.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_provider_name: str = Field("SSO", min_length=1, max_length=40)
    oidc_allowed_domains: str = ""
    # live event streams (SSE) open at once, across every API process
    streams_per_key: int = Field(20, ge=1)
    streams_per_company: int = Field(200, ge=1)
    public_url: str | None = None  # how providers reach the API; webhook URLs are built on it
    webhook_max_bytes: int = Field(3 * 1024 * 1024, ge=1024)
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    # the bearer token Prometheus presents to the API's /metrics (unset: no /metrics)
    metrics_token: str | None = Field(None, min_length=16)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"

    # embedded stack (`zapflow dev`)
    data_dir: Path = Path(".zapflow")
    dev_postgres_port: int = Field(DEV_POSTGRES_PORT, ge=1, le=65535)
    dev_redis_port: int = Field(DEV_REDIS_PORT, ge=1, le=65535)
    dev_temporal_port: int = Field(DEV_TEMPORAL_PORT, ge=1, le=65535)
    dev_temporal_ui_port: int = Field(8233, ge=1, le=65535)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("egress_allow")
    @classmethod
    def _egress_allow(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if entry and not _ADDRESS_OR_NAME.fullmatch(entry):
                raise ValueError(f"{entry!r} is neither a CIDR, an address nor a host name")
        return value

    @property
    def egress_allowed(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in self.egress_allow.split(",") if e.strip())

    @field_validator("oidc_issuer")
    @classmethod
    def _oidc_issuer(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
        if url.scheme != "https" and not (url.scheme == "http" and loopback):
            raise ValueError("must be an https:// URL (plain http only on loopback)")
        if url.query or url.fragment:
            raise ValueError("an issuer URL has no query or fragment")
        return value.rstrip("/")

    @field_validator("oidc_client_id")
    @classmethod
    def _oidc_client(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("oidc_issuer") and not value:
            raise ValueError("is needed with ZAPFLOW_OIDC_ISSUER")
        return value

    @property
    def oidc_domains(self) -> frozenset[str]:
        return frozenset(
            d.strip().lower().lstrip("@") for d in self.oidc_allowed_domains.split(",") if d.strip()
        )

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdecimal():
            raise ValueError("must be host:port")
        return value


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning a validation error into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"ZAPFLOW_{field.upper()}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
