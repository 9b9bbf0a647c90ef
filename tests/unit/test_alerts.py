"""The alerts, dashboards and autoscaling queries name only metrics that exist.

Every PromQL expression in deploy/k8s (the PrometheusRule, the Grafana dashboards, KEDA's
prometheus triggers) is reduced to the metric names it selects, and each must be exported
by the API's prometheus-client registry (`api.observability.Metrics`, read from the real
registry, not a list) or be one of the external exporters' metrics listed here. Each alert
has a severity and a runbook that exists in docs/operations.md.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from api.maintenance import ShardHealth
from api.observability import Metrics

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
OPERATIONS = ROOT / "docs" / "operations.md"

# Metrics of exporters Ledgerflow does not run, named explicitly so that a typo or a metric
# an exporter does not have fails here. Sources: kube-state-metrics' Job, CronJob and Pod
# metrics; CloudNativePG's instance manager (its collector and default queries,
# `pg_replication` and `backends`); the Temporal SDK's worker metrics (the worker command
# test scrapes this one from a real worker).
KUBE_STATE_METRICS = {
    "kube_job_failed",
    "kube_cronjob_status_last_successful_time",
    "kube_pod_status_ready",
}
CLOUDNATIVEPG = {
    "cnpg_collector_up",
    "cnpg_collector_sync_replicas",
    "cnpg_pg_replication_lag",
    "cnpg_pg_replication_in_recovery",
    "cnpg_backends_total",
}
TEMPORAL_SDK = {"temporal_worker_task_slots_available"}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}

# PromQL's functions, aggregations and keywords: identifiers that are not metric names.
_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
    "rate", "irate", "increase", "delta", "deriv", "histogram_quantile", "time",
    "abs", "absent", "clamp_min", "clamp_max", "label_replace", "vector", "scalar",
    "and", "or", "unless", "bool", "offset",
}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b")


class _OneShard:
    """Enough of a ShardCluster for the shard collector to be registered and collected."""

    shards = (None,)

    def pool_usage(self) -> list[tuple[int, int, int]]:
        return [(0, 1, 2)]


def _api_metrics() -> set[str]:
    """Every sample name the API's registry exports, from its families' types."""
    metrics = Metrics()
    cluster = _OneShard()
    metrics.watch_shards(cluster, ShardHealth(cluster))  # type: ignore[arg-type]
    names = set()
    for family in metrics.registry.collect():
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGE.sub("", text)
    return {word for word in _IDENTIFIER.findall(text) if word not in _PROMQL_WORDS}


def _rules() -> list[dict[str, Any]]:
    (rule,) = [d for d in yaml.safe_load_all((BASE / "alerts.yaml").read_text()) if d]
    assert rule["kind"] == "PrometheusRule"
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text()) for path in (BASE / "dashboards").glob("*.json")
    }


def _expressions() -> list[tuple[str, str]]:
    found = [(f"alert {r['alert']}", r["expr"]) for r in _rules()]
    for name, dashboard in _dashboards().items():
        for panel in dashboard["panels"]:
            found += [(f"{name}: {panel['title']}", t["expr"]) for t in panel["targets"]]
    for doc in yaml.safe_load_all((BASE / "api.yaml").read_text()):
        if doc and doc["kind"] == "ScaledObject":
            found += [
                (f"KEDA {t['name']}", t["metadata"]["query"])
                for t in doc["spec"]["triggers"]
                if t["type"] == "prometheus"
            ]
    return found


def test_the_metric_name_extraction_reads_promql():
    """The extraction itself: label matchers, grouping, ranges and functions are not names."""
    expr = (
        'histogram_quantile(0.99, sum by (pod, le) (rate(a_seconds_bucket{x="y"}[5m])))'
        " / on(pod) group_left() b_total unless count by (z) (c == 0) > 3 * 3600"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def test_the_api_registry_exports_what_the_alerts_build_on():
    exported = _api_metrics()
    assert {
        "ledgerflow_http_requests_total",
        "ledgerflow_event_loop_lag_seconds_bucket",
        "ledgerflow_saga_handovers_deferred_total",
        "ledgerflow_pool_connections_in_use",
        "ledgerflow_shard_up",
    } <= exported


@pytest.mark.parametrize(("where", "expr"), _expressions(), ids=lambda v: str(v)[:60])
def test_every_expression_names_only_exported_metrics(where: str, expr: str):
    known = _api_metrics() | KUBE_STATE_METRICS | CLOUDNATIVEPG | TEMPORAL_SDK
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    assert names <= known, f"{where}: {sorted(names - known)} is exported by nobody"
    assert expr.count("(") == expr.count(")"), f"{where}: unbalanced parentheses"
    assert 'namespace="ledgerflow"' in expr, f"{where}: not scoped to the namespace"


def test_the_alerts_cover_the_operating_risks():
    """Failed verify, money in flight too long, deferred hand-overs, event-loop lag, shard
    unavailable, and CloudNativePG's replication lag and synchronous standbys."""
    rules = {r["alert"]: r for r in _rules()}
    assert {
        "LedgerflowVerifyFailed",
        "LedgerflowMoneyInFlightTooLong",
        "LedgerflowHandoversDeferred",
        "LedgerflowEventLoopLag",
        "LedgerflowShardUnavailable",
        "LedgerflowApiAnswers503",
        "LedgerflowShardWithoutPrimary",
        "LedgerflowShardReplicationLag",
        "LedgerflowShardSyncReplicasMissing",
    } <= set(rules)
    stuck = yaml.safe_load((BASE / "transfers-stuck-cronjob.yaml").read_text())
    assert stuck["metadata"]["name"] in rules["LedgerflowMoneyInFlightTooLong"]["expr"]
    verify = yaml.safe_load((BASE / "verify-cronjob.yaml").read_text())
    assert verify["metadata"]["name"] in rules["LedgerflowVerifyFailed"]["expr"]


def test_every_alert_has_a_severity_and_a_runbook_in_the_operations_guide():
    guide = OPERATIONS.read_text(encoding="utf-8")
    headings = {
        re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
        for line in guide.splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in headings, f"docs/operations.md has no section {rule['alert']}"


def test_the_dashboards_are_grafana_json_in_labelled_config_maps():
    """Each dashboard has a unique uid and a datasource variable, and the kustomization
    turns each into a ConfigMap the Grafana sidecar picks up."""
    dashboards = _dashboards()
    assert set(dashboards) == {"ledgerflow-api", "ledgerflow-sagas", "ledgerflow-shards"}
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    for name, dashboard in dashboards.items():
        variables = [v["name"] for v in dashboard["templating"]["list"]]
        assert "datasource" in variables, name
        assert dashboard["panels"], name
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    generated = {
        entry["files"][0]: entry["options"]["labels"]
        for entry in kustomization["configMapGenerator"]
        if "files" in entry
    }
    assert generated == {
        f"dashboards/{name}.json": {"grafana_dashboard": "1"} for name in dashboards
    }
