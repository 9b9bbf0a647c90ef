"""Settings and the dev stack refuse what would expose the system: a weak bootstrap key, a
reserved tenant, shards or Temporal reachable from other machines."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger.errors import ErrorCode, LedgerError
from ledger.tenants import check_tenant_name, is_well_formed_api_key
from ledgerflow.dev import LOOPBACK, DevOptions, dev_services
from ledgerflow.settings import Settings


@pytest.mark.parametrize("weak", ["", "secret", "x" * 31, "with spaces " * 4, "é" * 40])
def test_a_weak_bootstrap_key_is_refused(weak: str) -> None:
    """LEDGERFLOW_API_KEY must be at least 32 characters of the key alphabet."""
    with pytest.raises(ValidationError, match="LEDGERFLOW_API_KEY"):
        Settings(api_key=weak)


def test_a_generated_key_is_well_formed() -> None:
    """Keys the system makes pass the shape check the API applies before any lookup."""
    assert is_well_formed_api_key("lf_sk_" + "A" * 43)
    assert Settings(api_key="lf_sk_" + "A" * 43).api_key


@pytest.mark.parametrize("name", ["__system__", "__x", "", "a b", "x" * 65])
def test_reserved_or_malformed_tenants_are_refused(name: str) -> None:
    """No key is made for the system tenant, any reserved name, or a malformed one."""
    with pytest.raises(LedgerError) as refused:
        check_tenant_name(name)
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(ValidationError):
        Settings(bootstrap_tenant=name)


def test_dev_binds_shards_and_temporal_to_loopback(tmp_path: Path) -> None:
    """`ledgerflow dev --host 0.0.0.0` exposes the API only: the trust-auth shards and the
    unauthenticated Temporal dev server listen on loopback whatever --host says."""
    options = DevOptions(
        data_dir=tmp_path,
        shards=2,
        host="0.0.0.0",
        port=8000,
        pg_port_base=54320,
        temporal_port=7233,
        ui_port=8233,
    )
    shards, temporal = dev_services(options, Settings())
    assert [s.host for s in shards] == [LOOPBACK, LOOPBACK]
    assert temporal.host == LOOPBACK
    assert all("127.0.0.1" in s.dsn for s in shards)
