"""The Kubernetes and KServe manifests: valid against the Kubernetes schemas, and consistent with each other,
with the Dockerfile and with the server's own defaults (ports, health paths, drain timeout, metric names).

Schemas come from ``kubernetes-validate`` (offline). Kustomize rendering uses ``kubectl kustomize`` (kubectl
is part of the project's machine image).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.serve_cli import serve
from modelport.server.settings import ServerSettings

from tests.deploy.image_config import stage_config

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve"
# The oldest Kubernetes still in wide use and the newest the package knows: the manifests must suit both.
K8S_VERSIONS = ("1.28.0", kv.latest_version())
# Files in deploy/kubernetes that are not resources kustomize applies.
NOT_RESOURCES = {"kustomization.yaml", "prometheus-adapter-values.yaml"}
DEFAULTS = ServerSettings()

Manifest = dict[str, Any]


def _load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _kustomization() -> Manifest:
    (document,) = _load(KUBERNETES / "kustomization.yaml")
    return document


def _resources() -> dict[str, Manifest]:
    """Every resource the kustomization lists, by kind."""
    found: dict[str, Manifest] = {}
    for name in _kustomization()["resources"]:
        for document in _load(KUBERNETES / name):
            assert document["kind"] not in found, f"two {document['kind']} manifests"
            found[document["kind"]] = document
    return found


def _container(pod_spec: Manifest, name: str) -> Manifest:
    return next(container for container in pod_spec["containers"] if container["name"] == name)


def _validate(manifest: Manifest, version: str) -> None:
    # strict: unknown fields (a typo such as "readinesProbe") are errors, not silently dropped.
    kv.validate(manifest, version, strict=True)


def _drain_timeout(container: Manifest) -> float:
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    return float(env.get("MODELPORT_DRAIN_TIMEOUT", DEFAULTS.drain_timeout))


def _pre_stop_seconds(container: Manifest) -> float:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


# --- schemas ---------------------------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_in_the_folder() -> None:
    listed = set(_kustomization()["resources"])
    present = {path.name for path in KUBERNETES.glob("*.yaml")} - NOT_RESOURCES
    assert listed == present, f"kustomization.yaml resources {sorted(listed)} != files {sorted(present)}"
    assert set(_resources()) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(set(_kustomization()["resources"])))
def test_each_manifest_is_valid_against_the_kubernetes_schema(name: str, version: str) -> None:
    for document in _load(KUBERNETES / name):
        _validate(document, version)


def test_the_validator_rejects_a_broken_manifest() -> None:
    """The schema check is not vacuous: a misspelt field and a wrongly typed port are both refused."""
    deployment = _resources()["Deployment"]
    misspelt = copy.deepcopy(deployment)
    container = _container(misspelt["spec"]["template"]["spec"], "modelport")
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kv.ValidationError):
        _validate(misspelt, kv.latest_version())
    wrong_type = copy.deepcopy(deployment)
    _container(wrong_type["spec"]["template"]["spec"], "modelport")["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kv.ValidationError):
        _validate(wrong_type, kv.latest_version())


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)
def test_kustomize_renders_valid_resources_with_the_configured_image() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    documents = [document for document in yaml.safe_load_all(rendered.stdout) if document]
    assert {document["kind"] for document in documents} == set(_resources())
    for document in documents:
        _validate(document, kv.latest_version())
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelport"
    (image,) = _kustomization()["images"]
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    rendered_image = _container(deployment["spec"]["template"]["spec"], "modelport")["image"]
    assert rendered_image == f"{image['newName']}:{image['newTag']}"


# --- cross-references --------------------------------------------------------------------------------------


def test_selectors_match_the_pod_labels() -> None:
    resources = _resources()
    deployment = resources["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service_selector = resources["Service"]["spec"]["selector"]
    assert service_selector.items() <= pod_labels.items(), "the Service would select no pod"
    pdb_selector = resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert pdb_selector.items() <= pod_labels.items(), "the PodDisruptionBudget would cover no pod"
    target = resources["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_ports_agree_with_the_server_defaults_the_dockerfile_and_the_service() -> None:
    resources = _resources()
    container = _container(resources["Deployment"]["spec"]["template"]["spec"], "modelport")
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    expected = {"http": DEFAULTS.http_port, "grpc": DEFAULTS.grpc_port, "metrics": DEFAULTS.metrics_port}
    assert container_ports == expected
    assert set(stage_config(ROOT / "Dockerfile").exposed_ports) == set(expected.values())
    for port in resources["Service"]["spec"]["ports"]:
        assert port["targetPort"] in container_ports, f"Service port {port['name']} targets no container port"
        assert port["port"] == container_ports[port["targetPort"]]
    assert {port["name"] for port in resources["Service"]["spec"]["ports"]} == set(expected)


def test_probes_hit_the_health_endpoints_on_the_http_port() -> None:
    container = _container(_resources()["Deployment"]["spec"]["template"]["spec"], "modelport")
    named_ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    def target(probe: str) -> tuple[str, int]:
        http_get = container[probe]["httpGet"]
        port = http_get["port"]
        return http_get["path"], named_ports[port] if isinstance(port, str) else port

    assert target("livenessProbe") == ("/v2/health/live", DEFAULTS.http_port)
    assert target("readinessProbe") == ("/v2/health/ready", DEFAULTS.http_port)
    assert target("startupProbe") == ("/v2/health/ready", DEFAULTS.http_port)


def test_prometheus_annotations_point_at_the_metrics_port() -> None:
    template = _resources()["Deployment"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == DEFAULTS.metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_grace_period_outlasts_pre_stop_plus_the_drain_timeout() -> None:
    pod_spec = _resources()["Deployment"]["spec"]["template"]["spec"]
    container = _container(pod_spec, "modelport")
    needed = _pre_stop_seconds(container) + _drain_timeout(container)
    assert pod_spec["terminationGracePeriodSeconds"] > needed, (
        f"terminationGracePeriodSeconds {pod_spec['terminationGracePeriodSeconds']} s must exceed preStop + "
        f"drain timeout = {needed} s, or Kubernetes kills requests still draining"
    )


def test_the_pod_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    pod_spec = _resources()["Deployment"]["spec"]["template"]["spec"]
    image_user = stage_config(ROOT / "Dockerfile").user
    assert image_user is not None
    uid, _, gid = image_user.partition(":")
    security = pod_spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (str(security["runAsUser"]), str(security["runAsGroup"])) == (uid, gid)
    container = _container(pod_spec, "modelport")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Writable on a read-only root: the temp folder, and the shared memory that batches travel through.
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/tmp", "/dev/shm"} <= mounted


def test_every_modelport_variable_is_one_the_server_reads() -> None:
    """An environment variable ``modelport serve`` does not read would be silently ignored."""
    fields = {parameter.envvar for parameter in serve.params if isinstance(parameter.envvar, str)}
    assert "MODELPORT_HTTP_PORT" in fields
    deployment = _resources()["Deployment"]
    (isvc,) = _load(KSERVE / "inferenceservice.yaml")
    env_sources = {
        "Dockerfile": set(stage_config(ROOT / "Dockerfile").env),
        "deployment.yaml": {
            item["name"] for item in _container(deployment["spec"]["template"]["spec"], "modelport")["env"]
        },
        "inferenceservice.yaml": {item["name"] for item in isvc["spec"]["predictor"]["containers"][0]["env"]},
    }
    for source, names in env_sources.items():
        unknown = {name for name in names if name.startswith("MODELPORT_")} - fields
        assert not unknown, f"{source} sets {sorted(unknown)}, which modelport serve does not read"


def test_the_hpa_queue_metric_comes_from_the_adapter_rule_over_a_real_server_histogram() -> None:
    hpa = _resources()["HorizontalPodAutoscaler"]
    pod_metrics = [
        metric["pods"]["metric"]["name"] for metric in hpa["spec"]["metrics"] if metric["type"] == "Pods"
    ]
    assert pod_metrics, "the HPA has no per-pod (queue delay) metric"
    resources = [
        metric["resource"]["name"] for metric in hpa["spec"]["metrics"] if metric["type"] == "Resource"
    ]
    assert resources == ["cpu"]
    (values,) = _load(KUBERNETES / "prometheus-adapter-values.yaml")
    rules = {rule["name"]["as"]: rule for rule in values["rules"]["custom"]}
    for name in pod_metrics:
        assert name in rules, f"the HPA metric {name} has no prometheus-adapter rule"
    histograms = {family.name for family in ServerMetrics().registry.collect() if family.type == "histogram"}
    for rule in rules.values():
        series = rule["seriesQuery"].split("{")[0]
        base = series.removesuffix("_count")
        assert base in histograms, f"adapter rule reads {series}, but the server exports no histogram {base}"
        assert f"{base}_sum" in rule["metricsQuery"]
        assert f"{base}_count" in rule["metricsQuery"]


# --- KServe ------------------------------------------------------------------------------------------------


def _inference_service() -> Manifest:
    (document,) = _load(KSERVE / "inferenceservice.yaml")
    return document


# Fields of KServe's predictor spec that are not part of a Kubernetes PodSpec.
_KSERVE_COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleTarget",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "annotations",
    "labels",
    "deploymentStrategy",
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_kserve_predictor_is_a_valid_pod_spec(version: str) -> None:
    """No schema for the InferenceService CRD is available offline; its predictor is a PodSpec plus KServe's
    component fields, so the PodSpec part is validated as a Pod."""
    predictor = _inference_service()["spec"]["predictor"]
    pod_spec = {key: value for key, value in predictor.items() if key not in _KSERVE_COMPONENT_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "modelport-predictor"}, "spec": pod_spec}
    _validate(pod, version)


def test_the_kserve_predictor_serves_the_v2_protocol_from_the_image() -> None:
    isvc = _inference_service()
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    (container,) = isvc["spec"]["predictor"]["containers"]
    deployment = _resources()["Deployment"]
    assert container["image"] == _container(deployment["spec"]["template"]["spec"], "modelport")["image"]
    (port,) = container["ports"]
    # Knative routes exactly one port; "http1" marks it as REST.
    assert (port["name"], port["containerPort"]) == ("http1", DEFAULTS.http_port)
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": DEFAULTS.http_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": DEFAULTS.http_port}
    volume = stage_config(ROOT / "Dockerfile").volumes[0]
    assert container["args"] == ["--repository", volume]
    annotations = isvc["metadata"]["annotations"]
    assert int(annotations["prometheus.kserve.io/port"]) == DEFAULTS.metrics_port
    predictor = isvc["spec"]["predictor"]
    # Knative takes the termination grace period from the request timeout and refuses the PodSpec field.
    assert "terminationGracePeriodSeconds" not in predictor
    assert predictor["timeout"] > _drain_timeout(container)
    # Pod-level securityContext is behind a Knative feature flag; the container's own is always accepted.
    assert "securityContext" not in predictor
    image_user = stage_config(ROOT / "Dockerfile").user
    assert image_user is not None
    assert container["securityContext"]["runAsNonRoot"] is True
    assert str(container["securityContext"]["runAsUser"]) == image_user.split(":")[0]
