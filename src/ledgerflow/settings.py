"""One settings object, read from `LEDGERFLOW_*` environment variables.

Outside development it refuses the unsafe defaults (a generated API key, the dev server).
"""

from enum import StrEnum
from pathlib import Path

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger import limits
from ledger.errors import LedgerError
from ledger.tenants import check_tenant_name, is_well_formed_api_key


class Environment(StrEnum):
    """Where the process runs; production refuses development shortcuts."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of a Ledgerflow process."""

    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    shard_dsns: list[str] = Field(
        default_factory=list,
        description="PostgreSQL DSNs in shard order; shard i is the i-th DSN.",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = Field(
        default=False,
        description="Connect to Temporal over TLS (implied by the API key or a client "
        "certificate); the server is verified against the system's roots or the CA file.",
    )
    temporal_tls_ca_path: FilePath | None = Field(
        default=None, description="PEM CA bundle that signed the Temporal frontend's certificate."
    )
    temporal_tls_cert_path: FilePath | None = Field(
        default=None,
        description="PEM client certificate for mTLS (Temporal Cloud, or a "
        "self-hosted frontend with requireClientAuth).",
    )
    temporal_tls_key_path: FilePath | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    temporal_tls_server_name: str | None = Field(
        default=None,
        description="Name the frontend's certificate is verified against, "
        "when it differs from the address's host.",
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key (sent as a bearer token, over TLS)."
    )
    task_queue: str = "ledgerflow-settlement"
    api_key: str | None = Field(
        default=None, description="Bootstrap API key; dev generates one when unset."
    )
    bootstrap_tenant: str = "default"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    pool_size_max: int = Field(default=limits.POOL_SIZE_DEFAULT, ge=1, le=limits.POOL_SIZE_MAX)
    saga_batch_window_ms: int = Field(
        default=limits.SAGA_BATCH_WINDOW_MS_DEFAULT, ge=0, le=limits.SAGA_BATCH_WINDOW_MS_MAX
    )
    saga_batch_size_max: int = Field(
        default=limits.SAGA_BATCH_SIZE_MAX, ge=1, le=limits.SAGA_BATCH_SIZE_MAX
    )
    saga_sync_wait_s: float = Field(
        default=limits.SAGA_SYNC_WAIT_S_DEFAULT, ge=0, le=limits.SAGA_SYNC_WAIT_S_MAX
    )
    review_timeout_s: float = Field(
        default=limits.REVIEW_TIMEOUT_S_DEFAULT,
        gt=0,
        le=limits.REVIEW_TIMEOUT_S_MAX,
        description="A transfer waiting for review is rejected after this many seconds.",
    )
    reviews_waiting_max: int = Field(
        default=limits.REVIEWS_WAITING_MAX_DEFAULT,
        ge=1,
        le=limits.REVIEWS_WAITING_MAX_MAX,
        description="The most transfers one tenant may have waiting for review; beyond it a "
        "transfer is 409 review_queue_full and nothing is held.",
    )
    worker_metrics_address: str | None = Field(
        default=None,
        description="host:port where `ledgerflow worker` serves the Temporal SDK's Prometheus "
        "metrics (task latencies, slots, polls); unset serves none.",
    )
    rate_limit_per_s: float = Field(
        default=limits.RATE_LIMIT_PER_S_DEFAULT,
        ge=0,
        le=limits.RATE_LIMIT_PER_S_MAX,
        description="Requests per second per API key in each API process; 0 is unlimited.",
    )
    rate_limit_burst: int = Field(
        default=limits.RATE_LIMIT_BURST_DEFAULT, ge=1, le=limits.RATE_LIMIT_BURST_MAX
    )
    worker_health_address: str | None = Field(
        default=None,
        description="host:port where `ledgerflow worker` answers Kubernetes probes "
        "(/healthz, /readyz); unset serves none.",
    )
    data_dir: Path = Path(".ledgerflow")
    log_level: str = "info"

    @field_validator("api_key")
    @classmethod
    def _strong_api_key(cls, value: str | None) -> str | None:
        if value is not None and not is_well_formed_api_key(value):
            raise ValueError(
                "LEDGERFLOW_API_KEY must be 32 to 128 characters of letters, digits and"
                " '_.~+/=-' (generate one with: python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))')"
            )
        return value

    @field_validator("bootstrap_tenant")
    @classmethod
    def _customer_tenant(cls, value: str) -> str:
        try:
            return check_tenant_name(value)
        except LedgerError as error:
            raise ValueError(error.message) from error

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env is Environment.PRODUCTION and not self.shard_dsns:
            raise ValueError("LEDGERFLOW_SHARD_DSNS is required in production")
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            raise ValueError(
                "LEDGERFLOW_TEMPORAL_TLS_CERT_PATH and LEDGERFLOW_TEMPORAL_TLS_KEY_PATH go "
                "together (mTLS needs both the certificate and its key)"
            )
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        """Whether the Temporal connection is TLS: asked for, or implied by credentials
        that must never travel in clear text."""
        return (
            self.temporal_tls
            or self.temporal_api_key is not None
            or self.temporal_tls_cert_path is not None
            or self.temporal_tls_ca_path is not None
        )
