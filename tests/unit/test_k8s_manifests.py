"""Static checks of the Kubernetes manifests under deploy/k8s; no cluster needed.

Every YAML file parses, every path a kustomization names exists, every workload runs
non-root with resources, the API has its probes, the settings the containers set are
settings Ledgerflow reads, and the DSNs, secrets, shards, network policy and Temporal
values agree with each other. When `kubectl` (or `kustomize`) is installed, every overlay
is also built and the rendered output checked.
"""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import limits
from ledgerflow.settings import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
YAML_FILES = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
SHARDS = [f"ledgerflow-shard-{i}" for i in range(4)]

# The LEDGERFLOW_* variables Ledgerflow's settings read (pydantic-settings, prefix
# LEDGERFLOW_); a name outside this set is a typo that would be silently ignored.
ALLOWED_SETTINGS = {
    "LEDGERFLOW_ENV",
    "LEDGERFLOW_SHARD_DSNS",
    "LEDGERFLOW_TEMPORAL_ADDRESS",
    "LEDGERFLOW_TEMPORAL_NAMESPACE",
    "LEDGERFLOW_TASK_QUEUE",
    "LEDGERFLOW_HOST",
    "LEDGERFLOW_PORT",
    "LEDGERFLOW_POOL_SIZE_MAX",
    "LEDGERFLOW_SAGA_BATCH_WINDOW_MS",
    "LEDGERFLOW_SAGA_BATCH_SIZE_MAX",
    "LEDGERFLOW_SAGA_SYNC_WAIT_S",
    "LEDGERFLOW_API_KEY",
    "LEDGERFLOW_LOG_LEVEL",
    "LEDGERFLOW_DATA_DIR",
    "LEDGERFLOW_WORKER_METRICS_ADDRESS",
    "LEDGERFLOW_WORKER_HEALTH_ADDRESS",
    "LEDGERFLOW_TEMPORAL_TLS",
    "LEDGERFLOW_TEMPORAL_TLS_CA_PATH",
    "LEDGERFLOW_TEMPORAL_TLS_CERT_PATH",
    "LEDGERFLOW_TEMPORAL_TLS_KEY_PATH",
    "LEDGERFLOW_TEMPORAL_TLS_SERVER_NAME",
    "LEDGERFLOW_TEMPORAL_API_KEY",
}
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _rel(path: Path) -> str:
    return str(path.relative_to(K8S))


def _load(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _objects() -> list[dict[str, Any]]:
    """Every Kubernetes object in the tree (kustomizations and Helm values excluded)."""
    objects = []
    for path in YAML_FILES:
        for doc in _load(path):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                if doc["kind"] in {"Kustomization", "Component"}:
                    continue
                objects.append(doc)
    return objects


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _workloads(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        spec = _pod_spec(obj)
        if spec is not None:
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _kustomizations() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, _load(path)[0]) for path in KUSTOMIZATIONS]


# -- parsing and kustomize structure -------------------------------------------------


def test_the_tree_has_the_expected_layout():
    for required in [
        "base/kustomization.yaml",
        "overlays/dev/kustomization.yaml",
        "overlays/production/kustomization.yaml",
        "overlays/loadtest/kustomization.yaml",
        "components/locust/kustomization.yaml",
        "temporal/kustomization.yaml",
        "temporal-values.yaml",
        "README.md",
    ]:
        assert (K8S / required).is_file(), required
    assert (ROOT / "Dockerfile").is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_every_yaml_file_parses(path: Path):
    docs = _load(path)
    assert docs, f"{_rel(path)} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{_rel(path)}: a document is not a mapping"


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=_rel)
def test_every_path_a_kustomization_names_exists(path: Path):
    (kustomization,) = _load(path)
    here = path.parent
    named: list[str] = []
    named += kustomization.get("resources", [])
    named += kustomization.get("components", [])
    named += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    named += kustomization.get("patchesStrategicMerge", [])
    for generator in [
        *kustomization.get("configMapGenerator", []),
        *kustomization.get("secretGenerator", []),
    ]:
        named += generator.get("envs", [])
        named += [entry.rpartition("=")[2] for entry in generator.get("files", [])]
    for entry in named:
        if "://" in entry:
            continue
        target = (here / entry).resolve()
        assert target.exists(), f"{_rel(path)} names {entry}, which does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{entry} is no kustomization"
    expected_kind = "Component" if "components" in path.parts else "Kustomization"
    assert kustomization["kind"] == expected_kind


def test_every_resource_file_is_used_by_a_kustomization():
    used = set()
    for path, kustomization in _kustomizations():
        for entry in kustomization.get("resources", []):
            used.add((path.parent / entry).resolve())
    for path in YAML_FILES:
        if path.name == "kustomization.yaml" or path.parent == K8S:
            continue
        if path.name.endswith(".example.yaml"):
            continue  # documentation, deliberately not applied
        assert path.resolve() in used, f"{_rel(path)} is not listed in any kustomization"


def test_no_real_secret_is_committed():
    for obj in _objects():
        if obj["kind"] == "Secret":
            data = {**obj.get("data", {}), **obj.get("stringData", {})}
            assert all("replace-me" in str(v) for v in data.values()), obj["metadata"]["name"]
    for path, kustomization in _kustomizations():
        assert "secretGenerator" not in kustomization, _rel(path)
        for entry in kustomization.get("resources", []):
            assert "secret" not in entry.lower(), f"{_rel(path)} applies {entry}"


# -- workloads -------------------------------------------------------------------------


def test_every_workload_runs_non_root_read_only_with_resources():
    workloads = list(_workloads(_objects()))
    assert len(workloads) >= 7
    for name, spec in workloads:
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 0) != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in spec["containers"]:
            where = f"{name} container {container['name']}"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_the_api_serves_port_8000_with_readiness_and_liveness_probes():
    objects = _objects()
    api = _named(objects, "Deployment", "ledgerflow-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["api"]
    assert [p["containerPort"] for p in container["ports"]] == [8000]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert "replicas" not in api["spec"], "the ScaledObject owns the replica count"
    service = _named(objects, "Service", "ledgerflow-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_api_scales_on_requests_and_event_loop_lag_not_cpu():
    """One `ledgerflow api` process uses about one core, so the pod requests one CPU (no CPU
    limit to throttle its loop), and KEDA scales on what saturates a process: requests per
    second and event-loop lag, both metrics the API exports. No CPU autoscaler is left."""
    objects = _objects()
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    api = _named(objects, "Deployment", "ledgerflow-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "1"
    assert "cpu" not in container["resources"]["limits"]
    scaled = _named(objects, "ScaledObject", "ledgerflow-api")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {"name": "ledgerflow-api"}
    assert scaled["spec"]["minReplicaCount"] == 3
    triggers = {t["name"]: t for t in scaled["spec"]["triggers"]}
    assert {t["type"] for t in triggers.values()} == {"prometheus"}
    rps = triggers["requests-per-second"]
    assert rps["metricType"] == "AverageValue"
    assert "ledgerflow_http_requests_total" in rps["metadata"]["query"]
    lag = triggers["event-loop-lag"]
    assert lag["metricType"] == "Value"
    assert "ledgerflow_event_loop_lag_seconds_bucket" in lag["metadata"]["query"]
    assert float(lag["metadata"]["threshold"]) > 0


def test_the_workers_scale_on_the_settlement_backlog():
    """KEDA's Temporal scaler reads the backlog of the task queue, namespace and frontend
    the workers themselves use."""
    settings = _env_file(BASE / "settings.env")
    objects = _objects()
    worker = _named(objects, "Deployment", "ledgerflow-worker")
    assert "replicas" not in worker["spec"], "the ScaledObject owns the replica count"
    scaled = _named(objects, "ScaledObject", "ledgerflow-worker")
    assert scaled["spec"]["scaleTargetRef"] == {"name": "ledgerflow-worker"}
    assert scaled["spec"]["minReplicaCount"] >= 2
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    assert trigger["metadata"]["taskQueue"] == settings["LEDGERFLOW_TASK_QUEUE"]
    assert trigger["metadata"]["namespace"] == settings["LEDGERFLOW_TEMPORAL_NAMESPACE"]
    assert trigger["metadata"]["endpoint"] == settings["LEDGERFLOW_TEMPORAL_ADDRESS"]
    assert int(trigger["metadata"]["targetQueueSize"]) > 0


def test_the_worker_has_probes_and_a_grace_period_that_lets_activities_finish():
    """The worker answers the kubelet on LEDGERFLOW_WORKER_HEALTH_ADDRESS's port, and its pod
    waits WORKER_TERMINATION_GRACE_PERIOD_S after SIGTERM, which limits.py asserts covers
    the graceful shutdown the worker is built with plus the time to close."""
    worker = _named(_objects(), "Deployment", "ledgerflow-worker")
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == limits.WORKER_TERMINATION_GRACE_PERIOD_S
    assert (
        spec["terminationGracePeriodSeconds"]
        >= limits.WORKER_GRACEFUL_SHUTDOWN_S + limits.WORKER_SHUTDOWN_MARGIN_S
    )
    (container,) = spec["containers"]
    address = _env_file(BASE / "settings.env")["LEDGERFLOW_WORKER_HEALTH_ADDRESS"]
    port = int(address.rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == port
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ]:
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}, probe


def test_each_command_runs_as_its_own_workload():
    commands = {}
    for obj in _objects():
        spec = _pod_spec(obj)
        if spec is None:
            continue
        for container in spec["containers"]:
            if container["image"] == "ledgerflow":
                commands[tuple(container["args"])] = obj["kind"]
    assert commands == {
        ("api",): "Deployment",
        ("worker",): "Deployment",
        ("migrate",): "Job",
        ("verify",): "CronJob",
        ("transfers", "stuck", "--older-than", "10m"): "CronJob",
        ("temporal", "register-search-attributes"): "Job",
    }
    verify = _named(_objects(), "CronJob", "ledgerflow-verify")
    assert verify["spec"]["schedule"].split()[1:] == ["*", "*", "*", "*"], "hourly"
    assert verify["spec"]["concurrencyPolicy"] == "Forbid"


def test_api_and_worker_have_disruption_budgets():
    objects = _objects()
    budgets = [
        o["spec"]["selector"]["matchLabels"] for o in objects if o["kind"] == "PodDisruptionBudget"
    ]
    for name in ("ledgerflow-api", "ledgerflow-worker"):
        labels = _named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert any(budget.items() <= labels.items() for budget in budgets), name


# -- settings and DSNs -----------------------------------------------------------------


def _all_env_names() -> set[str]:
    names = set(_env_file(BASE / "settings.env"))
    for _, kustomization in _kustomizations():
        for generator in kustomization.get("configMapGenerator", []):
            names |= {entry.partition("=")[0] for entry in generator.get("literals", [])}
    for _, spec in _workloads(_objects()):
        for container in spec["containers"]:
            names |= {env["name"] for env in container.get("env", [])}
    return names


def test_only_settings_ledgerflow_reads_are_set():
    ledgerflow_names = {n for n in _all_env_names() if n.startswith("LEDGERFLOW_")}
    assert ledgerflow_names <= ALLOWED_SETTINGS, ledgerflow_names - ALLOWED_SETTINGS
    assert "LEDGERFLOW_SHARD_DSNS" in ledgerflow_names


def test_the_settings_names_match_the_settings_model():
    fields = {f"LEDGERFLOW_{name.upper()}" for name in Settings.model_fields}
    assert fields >= ALLOWED_SETTINGS, ALLOWED_SETTINGS - fields


def test_the_base_settings():
    values = _env_file(BASE / "settings.env")
    assert values["LEDGERFLOW_ENV"] == "production"
    assert values["LEDGERFLOW_HOST"] == "0.0.0.0"
    assert values["LEDGERFLOW_PORT"] == "8000"
    assert values["LEDGERFLOW_TASK_QUEUE"] == "ledgerflow-settlement"
    assert values["LEDGERFLOW_TEMPORAL_ADDRESS"].startswith("temporal-frontend.temporal")
    assert "LEDGERFLOW_API_KEY" not in values, "the API key belongs in a Secret"
    assert "LEDGERFLOW_SHARD_DSNS" not in values, "DSNs carry passwords"


def _ledgerflow_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in _workloads(_objects()):
        for container in spec["containers"]:
            refs = [e.get("configMapRef", {}).get("name") for e in container.get("envFrom", [])]
            if "ledgerflow-config" in refs:
                yield f"{name} container {container['name']}", container


def test_every_ledgerflow_container_composes_the_shard_dsns_from_the_cnpg_secrets():
    containers = list(_ledgerflow_containers())
    # api, worker, migrate, register-search-attributes, verify, transfers stuck, and the
    # Locust master of the loadtest overlay, which reconciles the books after a run.
    assert len(containers) == 7
    for where, container in containers:
        env = container["env"]
        defined: set[str] = set()
        by_name = {}
        for entry in env:
            for ref in VAR_REF.findall(entry.get("value", "")):
                assert ref in defined, f"{where}: $({ref}) is used before it is defined"
            defined.add(entry["name"])
            by_name[entry["name"]] = entry
        dsns = json.loads(by_name["LEDGERFLOW_SHARD_DSNS"]["value"])
        assert len(dsns) == len(SHARDS), where
        for index, (dsn, shard) in enumerate(zip(dsns, SHARDS, strict=True)):
            password = f"PG_SHARD_{index}_PASSWORD"
            expected = f"postgresql://ledgerflow:$({password})@{shard}-rw:5432/ledgerflow"
            assert dsn.startswith(expected), where
            secret = by_name[password]["valueFrom"]["secretKeyRef"]
            assert secret == {"name": f"{shard}-app", "key": "password"}, where


def test_the_api_gets_its_key_from_the_secret():
    for where, container in _ledgerflow_containers():
        refs = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
        if container["args"] == ["api"]:
            assert refs == [None, "ledgerflow-secrets"], where
    example = _load(BASE / "secret.example.yaml")[0]
    assert example["metadata"]["name"] == "ledgerflow-secrets"
    assert set(example["stringData"]) == {"LEDGERFLOW_API_KEY"}


# -- PostgreSQL shards, monitoring, network policy ------------------------------------


def _clusters(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Cluster"}


def test_four_synchronous_cnpg_shards():
    clusters = _clusters(_load_all(BASE / "postgres-shards.yaml"))
    assert sorted(clusters) == SHARDS
    for name, cluster in clusters.items():
        spec = cluster["spec"]
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
        assert spec["instances"] == 3, name
        synchronous = spec["postgresql"]["synchronous"]
        assert synchronous == {"method": "any", "number": 1, "dataDurability": "required"}
        assert spec["storage"]["size"] == "100Gi", name
        assert spec["resources"]["requests"], name
        assert spec["resources"]["limits"], name
        assert spec["bootstrap"]["initdb"]["owner"] == "ledgerflow"
        assert spec["bootstrap"]["initdb"]["database"] == "ledgerflow"


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in _load(path) if "kind" in d]


def test_every_postgres_cluster_has_a_pod_monitor():
    objects = _objects()
    monitored = {
        o["spec"]["selector"]["matchLabels"].get("cnpg.io/cluster")
        for o in objects
        if o["kind"] == "PodMonitor"
    }
    assert set(_clusters(objects)) <= monitored


def test_the_network_policy_admits_exactly_the_ledgerflow_shard_clients():
    objects = _objects()
    (policy,) = [o for o in objects if o["metadata"]["name"] == "ledgerflow-shards"]
    (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
    assert selector["key"] == "cnpg.io/cluster"
    assert sorted(selector["values"]) == SHARDS
    client_rule = policy["spec"]["ingress"][0]
    required = client_rule["from"][0]["podSelector"]["matchLabels"]
    assert [p["port"] for p in client_rule["ports"]] == [5432]
    # Policies add up: a component may admit its own client (the Locust master) to 5432.
    admitting = [required]
    for other in objects:
        if other["kind"] != "NetworkPolicy" or other is policy:
            continue
        if other["spec"]["podSelector"].get("matchExpressions") != [selector]:
            continue
        for rule in other["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] == [5432], other["metadata"]["name"]
            admitting += [source["podSelector"]["matchLabels"] for source in rule["from"]]
    for obj in objects:
        if _pod_spec(obj) is None:
            continue
        labels = _pod_labels(obj)
        uses_shards = any(
            e["name"] == "LEDGERFLOW_SHARD_DSNS"
            for c in _pod_spec(obj)["containers"]
            for e in c.get("env", [])
        )
        admitted = any(wanted.items() <= labels.items() for wanted in admitting)
        assert admitted == uses_shards, obj["metadata"]["name"]


# -- Temporal ----------------------------------------------------------------------


def test_the_temporal_values_point_at_the_temporal_db_cluster():
    (values,) = _load(K8S / "temporal-values.yaml")
    persistence = values["server"]["config"]["persistence"]
    assert persistence["numHistoryShards"] == 512
    temporal_objects = [d for p in (K8S / "temporal").glob("*.yaml") for d in _load_all(p)]
    clusters = _clusters(temporal_objects)
    assert list(clusters) == ["temporal-db"]
    owner = clusters["temporal-db"]["spec"]["bootstrap"]["initdb"]["owner"]
    databases = {clusters["temporal-db"]["spec"]["bootstrap"]["initdb"]["database"]}
    databases |= {o["spec"]["name"] for o in temporal_objects if o["kind"] == "Database"}
    for store in ("default", "visibility"):
        sql = persistence["datastores"][store]["sql"]
        assert sql["pluginName"] == "postgres12", "advanced visibility needs postgres12"
        assert sql["connectAddr"].startswith("temporal-db-rw.temporal")
        assert sql["existingSecret"] == "temporal-db-app"
        assert sql["user"] == owner
        assert sql["databaseName"] in databases
    namespaces = [n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]]
    assert _env_file(BASE / "settings.env")["LEDGERFLOW_TEMPORAL_NAMESPACE"] in namespaces


# -- rendered overlays (needs kubectl or kustomize) ---------------------------------


def _kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def _build(directory: Path) -> list[dict[str, Any]]:
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


BUILDS = [
    "base",
    "overlays/dev",
    "overlays/production",
    "overlays/loadtest",
    "temporal",
    "temporal-dev",
    "temporal-production",
]


@pytest.mark.parametrize("name", BUILDS)
def test_every_kustomization_builds(name: str):
    objects = _build(K8S / name)
    assert objects
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") in {"ledgerflow", "temporal"}, obj["metadata"]
    for cluster in _clusters(objects).values():
        synchronous = cluster["spec"].get("postgresql", {}).get("synchronous")
        if synchronous:
            # A required synchronous standby that cannot exist would block every commit.
            assert synchronous["number"] < cluster["spec"]["instances"], cluster["metadata"]["name"]
    if name.startswith("overlays/"):
        for _, spec in _workloads(objects):
            for container in spec["containers"]:
                assert ":" in container["image"], f"{container['image']} is not pinned"


def test_the_dev_overlay_is_small_and_needs_no_prometheus_operator_nor_keda():
    objects = _build(K8S / "overlays/dev")
    groups = {o["apiVersion"].partition("/")[0] for o in objects}
    assert not groups & {"monitoring.coreos.com", "keda.sh"}, groups
    for cluster in _clusters(objects).values():
        assert cluster["spec"]["instances"] == 1
    for obj in objects:
        if obj["kind"] == "Deployment":
            assert obj["spec"].get("replicas", 1) == 1


def test_the_production_connection_budget_fits_max_connections():
    objects = _build(K8S / "overlays/production")
    (config,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ledgerflow-config")
    ]
    pool = int(config["data"]["LEDGERFLOW_POOL_SIZE_MAX"])
    api = _named(objects, "ScaledObject", "ledgerflow-api")["spec"]["maxReplicaCount"]
    workers = _named(objects, "ScaledObject", "ledgerflow-worker")["spec"]["maxReplicaCount"]
    jobs = 3  # migrate or register-search-attributes, verify, transfers stuck
    for cluster in _clusters(objects).values():
        max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
        assert (api + workers + jobs) * pool <= max_connections


def test_the_loadtest_overlay_runs_locust_headless_as_jobs_and_keeps_the_report():
    """A master Job that waits for as many workers as the worker Job runs, writes its CSV
    and HTML report to a claimed volume, and has the shards' DSNs to reconcile at the end."""
    objects = _build(K8S / "overlays/loadtest")
    master = _named(objects, "Job", "ledgerflow-locust-master")
    worker = _named(objects, "Job", "ledgerflow-locust-worker")
    (container,) = master["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {"--master", "--headless", "--expect-workers=$(LOCUST_WORKERS)"} <= set(
        container["args"]
    )
    assert int(env["LOCUST_WORKERS"]) == worker["spec"]["parallelism"]
    assert "LEDGERFLOW_SHARD_DSNS" in env
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert "--csv=/reports/ledgerflow" in container["args"]
    assert "--html=/reports/ledgerflow.html" in container["args"]
    assert mounts["reports"] == "/reports"
    (reports,) = [
        v for v in master["spec"]["template"]["spec"]["volumes"] if v["name"] == "reports"
    ]
    claim = reports["persistentVolumeClaim"]["claimName"]
    assert _named(objects, "PersistentVolumeClaim", claim)
    (service,) = [o for o in objects if o["metadata"]["name"] == "ledgerflow-locust"]
    assert {p["port"] for p in service["spec"]["ports"]} == {5557}


def test_production_backs_up_every_shard_and_dev_does_not():
    """Every production shard archives its WAL through the Barman Cloud plugin to an
    ObjectStore that exists and keeps a retention, and has its own nightly plugin backup;
    the credentials are only an example file. The dev overlay takes no backups."""
    objects = _build(K8S / "overlays/production")
    stores = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ObjectStore"}
    scheduled = [o for o in objects if o["kind"] == "ScheduledBackup"]
    shards = {name: c for name, c in _clusters(objects).items() if name in SHARDS}
    assert set(shards) == set(SHARDS)
    for name, cluster in shards.items():
        (plugin,) = cluster["spec"]["plugins"]
        assert plugin["name"] == "barman-cloud.cloudnative-pg.io"
        assert plugin["isWALArchiver"] is True
        store = stores[plugin["parameters"]["barmanObjectName"]]
        assert store["spec"]["retentionPolicy"]
        (backup,) = [b for b in scheduled if b["spec"]["cluster"]["name"] == name]
        assert backup["spec"]["method"] == "plugin"
        assert backup["spec"]["pluginConfiguration"]["name"] == plugin["name"]
        assert len(backup["spec"]["schedule"].split()) == 6  # CNPG cron has seconds
    secrets = {
        ref["name"]
        for store in stores.values()
        for ref in store["spec"]["configuration"]["s3Credentials"].values()
    }
    assert not [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] in secrets]
    example = _load(K8S / "overlays/production/backup-secret.example.yaml")[0]
    assert example["metadata"]["name"] in secrets

    dev = _build(K8S / "overlays/dev")
    assert not [o for o in dev if o["kind"] in {"ObjectStore", "ScheduledBackup"}]
    assert all("plugins" not in c["spec"] for c in _clusters(dev).values())


def test_the_worker_serves_sdk_metrics_where_a_pod_monitor_scrapes():
    """LEDGERFLOW_WORKER_METRICS_ADDRESS, the worker's `metrics` port and its PodMonitor
    agree; the API and the Jobs do not open that port."""
    address = _env_file(BASE / "settings.env")["LEDGERFLOW_WORKER_METRICS_ADDRESS"]
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0"
    objects = _objects()
    worker = _named(objects, "Deployment", "ledgerflow-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in container["ports"]
    monitor = _named(objects, "PodMonitor", "ledgerflow-worker")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]


def test_temporal_production_backs_up_temporal_db_and_the_plain_one_does_not():
    """temporal-production adds WAL archiving and a nightly plugin backup to temporal-db,
    in namespace temporal; the plain temporal kustomization (dev) needs no plugin."""
    objects = _build(K8S / "temporal-production")
    (cluster,) = _clusters(objects).values()
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["isWALArchiver"] is True
    store = _named(objects, "ObjectStore", plugin["parameters"]["barmanObjectName"])
    assert store["metadata"]["namespace"] == "temporal"
    (backup,) = [o for o in objects if o["kind"] == "ScheduledBackup"]
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert backup["spec"]["method"] == "plugin"
    secret = store["spec"]["configuration"]["s3Credentials"]["accessKeyId"]["name"]
    example = _load(K8S / "components/temporal-backups/backup-secret.example.yaml")[0]
    assert example["metadata"] == {"name": secret, "namespace": "temporal"}
    plain = _build(K8S / "temporal")
    assert all("plugins" not in c["spec"] for c in _clusters(plain).values())


# -- Temporal in production: TLS, namespace security, a dev variant -----------------------


def test_production_talks_tls_to_temporal_with_the_ca_mounted_where_the_settings_say():
    """The production overlay turns on TLS to Temporal, and every container that talks to
    Temporal (API, worker, register-search-attributes) mounts the CA at the configured path,
    as KEDA's Temporal scaler trusts it; the Temporal values serve TLS from a mounted
    certificate that cert-manager issues for the names the clients verify."""
    objects = _build(K8S / "overlays/production")
    (config,) = [o for o in objects if o["metadata"]["name"].startswith("ledgerflow-config")]
    assert config["data"]["LEDGERFLOW_TEMPORAL_TLS"] == "true"
    ca_path = Path(config["data"]["LEDGERFLOW_TEMPORAL_TLS_CA_PATH"])
    talks_to_temporal = {"ledgerflow-api", "ledgerflow-worker"}
    talks_to_temporal.add("ledgerflow-register-search-attributes")
    for name, spec in _workloads(objects):
        mounts = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        mounted = str(ca_path.parent) in mounts
        assert mounted == (name.partition("/")[2] in talks_to_temporal), name
    (trigger,) = _named(objects, "ScaledObject", "ledgerflow-worker")["spec"]["triggers"]
    auth = _named(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {"parameter": "ca", "name": "temporal-ca", "key": "ca.crt"} in auth["spec"][
        "secretTargetRef"
    ]
    assert (
        trigger["metadata"]["tlsServerName"]
        == config["data"]["LEDGERFLOW_TEMPORAL_TLS_SERVER_NAME"]
    )
    (values,) = _load(K8S / "temporal-values.yaml")
    tls = values["server"]["config"]["tls"]
    mounted = {m["mountPath"] for m in values["server"]["additionalVolumeMounts"]}
    for side in ("internode", "frontend"):
        for key in ("certFile", "keyFile"):
            assert str(Path(tls[side]["server"][key]).parent) in mounted, (side, key)
    assert tls["internode"]["server"]["requireClientAuth"] is True
    secret = values["server"]["additionalVolumes"][0]["secret"]["secretName"]
    certificates = _build(K8S / "temporal-production")
    issued = {o["spec"]["secretName"] for o in certificates if o["kind"] == "Certificate"}
    assert secret in issued
    dns = _named(certificates, "Certificate", secret)["spec"]["dnsNames"]
    assert tls["frontend"]["client"]["serverName"] in dns
    assert tls["internode"]["client"]["serverName"] in dns
    assert config["data"]["LEDGERFLOW_TEMPORAL_TLS_SERVER_NAME"] in dns


def test_the_temporal_namespace_has_pod_security_and_a_network_policy():
    """Pod Security labels on the namespace; the server's pods admit the frontend port only
    from Ledgerflow and KEDA (and everything from each other)."""
    objects = _build(K8S / "temporal")
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in {"baseline", "restricted"}
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    policy = _named(objects, "NetworkPolicy", "temporal-server")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "temporal"}
    frontend_from = set()
    for rule in policy["spec"]["ingress"]:
        if [p["port"] for p in rule.get("ports", [])] == [7233]:
            for peer in rule["from"]:
                (name,) = peer["namespaceSelector"]["matchLabels"].values()
                frontend_from.add(name)
    assert frontend_from == {"ledgerflow", "keda"}


def test_the_dev_temporal_needs_neither_prometheus_operator_nor_cert_manager():
    """temporal-dev and temporal-values-dev.yaml run on kind or minikube: no PodMonitor, no
    ServiceMonitor, no certificates, one database instance, and the same database wiring
    as production."""
    objects = _build(K8S / "temporal-dev")
    groups = {o["apiVersion"].partition("/")[0] for o in objects}
    assert not groups & {"monitoring.coreos.com", "cert-manager.io"}, groups
    (cluster,) = _clusters(objects).values()
    assert cluster["spec"]["instances"] == 1
    assert "synchronous" not in cluster["spec"]["postgresql"]
    (values,) = _load(K8S / "temporal-values-dev.yaml")
    assert values["server"]["metrics"]["serviceMonitor"]["enabled"] is False
    assert "tls" not in values["server"]["config"]
    (production,) = _load(K8S / "temporal-values.yaml")
    for store in ("default", "visibility"):
        dev_sql = values["server"]["config"]["persistence"]["datastores"][store]["sql"]
        prod_sql = production["server"]["config"]["persistence"]["datastores"][store]["sql"]
        for key in ("connectAddr", "existingSecret", "databaseName", "user", "pluginName"):
            assert dev_sql[key] == prod_sql[key], (store, key)


# -- schemas ------------------------------------------------------------------------

KUBERNETES_VERSION = "1.31.0"
"""The Kubernetes API the manifests are validated against (offline: kubernetes-validate
ships the schemas)."""


@pytest.mark.parametrize("name", BUILDS)
def test_every_rendered_builtin_object_matches_the_kubernetes_schema(name: str):
    """Every rendered object of a built-in kind (Deployments, Services, CronJobs,
    NetworkPolicies, ...) validates against the Kubernetes API schema, with unknown fields
    refused; objects of operators' kinds (CloudNativePG, KEDA, cert-manager, the Prometheus
    operator) have no schema there and are counted apart."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    validated, custom = 0, 0
    for obj in _build(K8S / name):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom += 1
            continue
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}"
            ) from None
        validated += 1
    assert validated, f"{name}: nothing of a built-in kind was validated ({custom} custom)"
