"""The benchmark harness (`ledgerflow bench`) against the session's API: it moves what it
says it moved, in the mode asked for, and the books still balance."""

import httpx
import pytest

from ledgerflow.bench import BenchMode, BenchOptions, run_bench

pytestmark = pytest.mark.usefixtures("books")


@pytest.mark.parametrize("mode", ["single", "cross", "mixed"])
async def test_bench_drives_the_transfers_it_reports(
    api: httpx.AsyncClient, api_url: str, tenant_key: str, mode: str
) -> None:
    """Every transfer the harness counts was accepted, the latencies are real, and the
    transfers went between accounts on one shard, on two, or both, as the mode says."""
    before = {
        t["id"] for t in (await api.get("/v1/transfers", params={"limit": 100})).json()["data"]
    }
    result = await run_bench(
        BenchOptions(
            url=api_url,
            api_key=tenant_key,
            mode=BenchMode(mode),
            transfers=60,
            concurrency=8,
            duration_s_max=60,
            accounts_per_shard=2,
        )
    )
    assert result.ok == 60
    assert set(result.statuses) <= {201, 202}
    assert len(result.latencies_s) == 60
    assert 0 < result.percentile_ms(0.5) <= result.percentile_ms(0.99)
    assert "million a day" in result.summary()

    page = (await api.get("/v1/transfers", params={"limit": 100})).json()["data"]
    moved = [t for t in page if t["id"] not in before and t["amount"] <= 100]
    crossing = {t["cross_shard"] for t in moved[:60]}
    expected = {"single": {False}, "cross": {True}, "mixed": {False, True}}[mode]
    assert crossing == expected
