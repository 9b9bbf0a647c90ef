"""The dev stack's process management, against the real PostgreSQL and Temporal binaries."""

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from ledgerflow.devstack import (
    EmbeddedPostgres,
    PortInUseError,
    TemporalDevServer,
    free_port,
    port_in_use,
)
from tests.integration.helpers import run_ledgerflow
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket listens on for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _write_postmaster_pid(data_dir: Path, pid: int) -> None:
    """Imitate the pid file a killed postmaster leaves behind, naming `pid`."""
    (data_dir / "postmaster.pid").write_text(f"{pid}\n{data_dir}\n0\n5432\n\n\n  0 0\nready   \n")


async def test_postgres_data_survives_restart_and_leftovers(tmp_path: Path) -> None:
    """Rows survive stop/start; a stale pid file and an orphaned postmaster do not block start."""
    data_dir = tmp_path / "pg"
    first = EmbeddedPostgres(data_dir, port=free_port(), durable=False)
    # A second object on the same directory stands for the next run after the parent was
    # killed: the first postmaster is an orphan it must shut down and replace.
    second = EmbeddedPostgres(data_dir, port=free_port(), durable=False)
    await asyncio.to_thread(first.start)
    try:
        assert first.is_running()
        assert first.dsn == f"postgresql://postgres@127.0.0.1:{first.port}/ledgerflow"
        connection = await asyncpg.connect(first.dsn)
        await connection.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
        await connection.execute("INSERT INTO note VALUES (1, 'kept')")
        await connection.close()
        await asyncio.to_thread(second.start)
        assert not first.is_running()
        await asyncio.to_thread(second.stop)
        assert not second.is_running()
        # The pid in a stale file now belongs to an unrelated live process, as after a
        # container restart; postgres alone would refuse to start.
        unrelated = await asyncio.create_subprocess_exec("sleep", "30")
        try:
            _write_postmaster_pid(data_dir, unrelated.pid)
            await asyncio.to_thread(second.start)
        finally:
            unrelated.kill()
            await unrelated.wait()
        connection = await asyncpg.connect(second.dsn)
        assert await connection.fetchval("SELECT body FROM note WHERE id = 1") == "kept"
        await connection.close()
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
    assert (data_dir / "postgres.log").exists()


def test_postgres_refuses_taken_port(tmp_path: Path, taken_port: int) -> None:
    """A taken port fails fast with PortInUseError, before initdb or any server runs."""
    assert port_in_use("127.0.0.1", taken_port)
    postgres = EmbeddedPostgres(tmp_path / "pg", port=taken_port, durable=False)
    with pytest.raises(PortInUseError, match=str(taken_port)) as raised:
        postgres.start()
    assert raised.value.port == taken_port
    assert not postgres.is_running()
    assert not (tmp_path / "pg" / "PG_VERSION").exists()


def test_temporal_refuses_taken_ui_port(tmp_path: Path, taken_port: int) -> None:
    """The Web UI's port is checked as well as the gRPC port, before the server runs."""
    server = TemporalDevServer(db_file=tmp_path / "t.db", port=free_port(), ui_port=taken_port)
    with pytest.raises(PortInUseError, match="Web UI"):
        server.start()
    assert not server.is_running()


async def _custom_search_attributes(address: str) -> dict[str, int]:
    client = await Client.connect(address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return dict(listed.custom_attributes)


async def test_temporal_registers_search_attributes(tmp_path: Path) -> None:
    """Search attributes exist after start, including ones added after the database was made.

    start() is called from inside the running event loop on purpose: it must not need one.
    """
    db_file = tmp_path / "temporal.db"
    server = TemporalDevServer(
        db_file=db_file,
        port=free_port(),
        ui_port=free_port(),
        search_attributes={"LedgerflowStatus": "Keyword"},
        log_file=tmp_path / "temporal.log",
    )
    server.start()
    try:
        assert server.ui_url == f"http://127.0.0.1:{server.ui_port}"
        attributes = await _custom_search_attributes(server.address)
        assert attributes["LedgerflowStatus"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    finally:
        server.stop()
    assert not server.is_running()

    # The dev server registers --search-attribute only when it creates the database.
    restarted = TemporalDevServer(
        db_file=db_file,
        port=server.port,
        ui_port=None,
        search_attributes={"LedgerflowStatus": "Keyword", "LedgerflowTransferIds": "KeywordList"},
    )
    await asyncio.to_thread(restarted.start)
    try:
        assert restarted.ui_url is None
        attributes = await _custom_search_attributes(restarted.address)
        assert attributes["LedgerflowTransferIds"] == (
            IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        )
    finally:
        await asyncio.to_thread(restarted.stop)


async def test_register_search_attributes_command_on_a_bare_cluster(
    shard_dsns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledgerflow temporal register-search-attributes` gives a cluster that has none of
    them every settlement attribute with its type, and a second run changes nothing."""
    bare = TemporalDevServer(db_file=None, port=free_port(), ui_port=None)
    await asyncio.to_thread(bare.start)
    try:
        assert not set(await _custom_search_attributes(bare.address)) & set(SEARCH_ATTRIBUTE_TYPES)
        monkeypatch.setenv("LEDGERFLOW_TEMPORAL_ADDRESS", bare.address)
        code, out, err = await run_ledgerflow(shard_dsns, "temporal", "register-search-attributes")
        assert code == 0, err
        assert "LedgerflowTransferIds" in out
        registered = await _custom_search_attributes(bare.address)
        assert registered["LedgerflowTransferIds"] == (
            IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        )
        assert registered["LedgerflowAmount"] == IndexedValueType.INDEXED_VALUE_TYPE_INT
        assert set(SEARCH_ATTRIBUTE_TYPES) <= set(registered)

        code, out, err = await run_ledgerflow(shard_dsns, "temporal", "register-search-attributes")
        assert code == 0, err
        assert "all were already there" in out
    finally:
        await asyncio.to_thread(bare.stop)
