"""Specification of the deployment files: the Dockerfile, the Helm chart and its dashboard.

No Docker engine or helm binary runs here, so these tests read the files and check them against
the project: the entry point, port, disk directory and settings the code declares, the values the
chart's templates use, and the metric names the proxy exports (``METRICS`` below, read from
the metrics module's own registry).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.settings import CONFIG_ENV_VAR, CONFIG_FLAG, SETTINGS, SETTINGS_BY_NAME, Settings
from proxy.cli import COMMANDS
from tiering.members import MemberSource
from tiering.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MAKEFILE = REPO / "Makefile"
CHART = REPO / "helm" / "s3tier"
TEMPLATES = CHART / "templates"
DASHBOARD = CHART / "dashboards" / "s3tier.json"
SIDECAR_POD = CHART / "examples" / "sidecar-pod.yaml"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def exported_metrics() -> tuple[frozenset[str], frozenset[str]]:
    """The names the proxy's metrics export (counters with their _total), and its histograms."""
    names, histograms = set(), set()
    for family in Metrics().registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        if family.type == "histogram":
            histograms.add(family.name)
    return frozenset(names), frozenset(histograms)


METRICS, HISTOGRAMS = exported_metrics()
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


# --- reading the files -------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def instructions(name: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile() if instruction == name]


def only(name: str) -> str:
    found = instructions(name)
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def image_env() -> dict[str, str]:
    """ENV instructions in the KEY=value form, merged in order."""
    env: dict[str, str] = {}
    for arguments in instructions("ENV"):
        env.update(pair.partition("=")[::2] for pair in arguments.split())
    return env


def values() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def schema() -> dict[str, Any]:
    loaded = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def templates() -> Iterator[Path]:
    return iter(sorted(TEMPLATES.iterdir()))


def template_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in templates())


def lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        assert isinstance(tree, dict) and part in tree, f"no {part!r} on the way to {dotted}"
        tree = tree[part]
    return tree


def defined(tree: object, dotted: str) -> bool:
    for part in dotted.split("."):
        if not (isinstance(tree, dict) and part in tree):
            return False
        tree = tree[part]
    return True


def copied_sources() -> set[str]:
    """What the Dockerfile COPYs from the build context (a COPY's last word is its target)."""
    return {source for arguments in instructions("COPY") if not arguments.startswith("--from")
            for source in arguments.split()[:-1]}  # fmt: skip


def project_extras(command: str) -> set[str] | None:
    """The extras of this project a `pip install [-e] .[a,b]` in ``command`` names; None if it
    installs no ``.``."""
    pattern = r"\bpip install (?:--?\S+ )*['\"]?\.(?:\[([^\]]*)\])?['\"]?(?=\s|$)"
    found = [match[1] or "" for match in re.finditer(pattern, command)]
    if not found:
        return None
    return {extra.strip() for group in found for extra in group.split(",") if extra.strip()}


def image_extras() -> set[str]:
    found = [extras for run in instructions("RUN") if (extras := project_extras(run)) is not None]
    assert found, "the image installs this project"
    return set().union(*found)


def _wanted(requirement: Requirement, extras: Iterable[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": e}) for e in {"", *extras})


def installed_closure(extras: Iterable[str]) -> set[str]:
    """The distributions `pip install .[extras]` brings: pyproject's requirements and, from the
    installed packages' metadata (this venv holds all of them), everything they require."""
    project = PYPROJECT["project"]
    roots = [
        *project["dependencies"],
        *(text for extra in extras for text in project["optional-dependencies"][extra]),
    ]
    todo = [req for req in map(Requirement, roots) if _wanted(req, ())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for text in importlib.metadata.requires(requirement.name) or []:
            if _wanted(needed := Requirement(text), requirement.extras):
                todo.append(needed)
    return {name for name, _ in seen}


EMBEDDED_SERVER = {"moto", "flask", "werkzeug"}


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def sidecar_pod() -> dict[str, Any]:
    loaded = yaml.safe_load(SIDECAR_POD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def sidecar_container() -> dict[str, Any]:
    spec = sidecar_pod()["spec"]
    containers = spec.get("initContainers", []) + spec["containers"]
    (s3tier,) = [c for c in containers if c["name"] == "s3tier"]
    assert isinstance(s3tier, dict)
    return s3tier


def flag_values(args: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


# --- the Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_builds_on_python_3_11_slim() -> None:
    assert only("FROM") == "python:3.11-slim"


def test_dockerfile_entry_point_is_the_console_script_pyproject_declares() -> None:
    entrypoint = json.loads(only("ENTRYPOINT"))
    scripts = PYPROJECT["project"]["scripts"]
    assert entrypoint == ["s3tier"] and "s3tier" in scripts
    module, function = scripts["s3tier"].split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_dockerfile_command_is_a_subcommand_the_cli_has() -> None:
    command = json.loads(only("CMD"))
    assert command[0] == "serve"
    assert command[0] in {c.name for c in COMMANDS}


def test_dockerfile_installs_this_project_with_pip() -> None:
    assert any(re.search(r"\bpip install (--?\S+ )*\.(\s|$)", run) for run in instructions("RUN"))
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"],
              *PYPROJECT["tool"]["setuptools"]["packages"]}  # fmt: skip
    assert needed <= copied_sources()


def test_the_image_installs_neither_the_embedded_server_nor_the_dev_tools() -> None:
    assert image_extras() == set()
    assert installed_closure(image_extras()) & EMBEDDED_SERVER == set()


def test_the_image_installs_awscrt_for_s3_checksums() -> None:
    assert "awscrt" in installed_closure(image_extras())


def test_make_install_includes_the_embedded_server_the_quickstart_starts() -> None:
    installs = [extras for line in MAKEFILE.read_text(encoding="utf-8").splitlines()
                if (extras := project_extras(line)) is not None]  # fmt: skip
    assert installs and all("embedded" in extras for extras in installs)
    assert installed_closure({"embedded"}) >= EMBEDDED_SERVER


def test_dockerignore_lets_through_everything_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    assert patterns[0] == "*", "an allow-list keeps .venv and .git out of the build context"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert copied_sources() <= allowed


def test_exposed_port_is_the_default_port_of_the_settings_and_of_the_chart() -> None:
    assert int(only("EXPOSE")) == Settings().port == values()["port"]
    assert int(image_env()["S3TIER_PORT"]) == Settings().port


def test_volume_is_the_disk_dir_the_image_configures_and_the_chart_mounts() -> None:
    volume = only("VOLUME")
    assert volume == image_env()["S3TIER_DISK_DIR"] == values()["cache"]["dir"]


def test_image_environment_names_only_real_settings() -> None:
    known = {setting.env_var for setting in SETTINGS} | {CONFIG_ENV_VAR}
    assert {name for name in image_env() if name.startswith("S3TIER_")} <= known


def test_healthcheck_asks_the_liveness_endpoint_on_loopback_without_curl() -> None:
    check = only("HEALTHCHECK")
    assert "http://127.0.0.1:" in check and "/_s3tier/healthz" in check
    assert '"python"' in check and "curl" not in check


def test_image_runs_as_the_non_root_user_the_chart_names() -> None:
    steps = dockerfile()
    user_at = max(i for i, (name, _) in enumerate(steps) if name == "USER")
    uid = steps[user_at][1].split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit()
    assert int(uid) == values()["securityContext"]["runAsUser"]
    assert all(name != "RUN" for name, _ in steps[user_at:]), "nothing runs as root after USER"


# --- the chart ---------------------------------------------------------------------------------


def test_chart_yaml_is_a_v2_chart_deploying_this_version_of_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["name"] == CHART.name
    assert chart["appVersion"] == PYPROJECT["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


def test_every_values_path_a_template_uses_is_defined_in_values_yaml() -> None:
    used = {m.rstrip(".") for m in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template_text())}
    defaults = values()
    assert used
    assert [path for path in sorted(used) if not defined(defaults, path)] == []


def test_default_values_validate_against_the_values_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with moto[server]")
    validator_class = jsonschema.validators.validator_for(schema())
    validator_class.check_schema(schema())
    validator_class(schema()).validate(values())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("mode", "daemonset"),
        ("settings.host", "0.0.0.0"),  # the chart's args set it; the file would be overridden
        ("settings.ram_bytes", "1GiB"),  # derived from cache.ramMiB, which sizes the memory
        ("settings.log_levl", "info"),
        ("cache.ramMiB", "256MiB"),
        ("auth.mode", "basic"),
        ("dashboard.labels", {"grafana_dashboard": "0"}),
    ],
)
def test_values_schema_rejects_what_the_chart_cannot_render(path: str, value: object) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with moto[server]")
    bad = values()
    *parents, leaf = path.split(".")
    node = bad
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def configmap_setting_keys() -> set[str]:
    """The top-level keys of the s3tier.yaml the ConfigMap renders, literal or from values."""
    text = (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")
    block = text.split("s3tier.yaml: |", 1)[1]
    keys = set(re.findall(r"^ {4}([a-z_]+):", block, re.MULTILINE))
    # `toYaml .Values.x`, or `with .Values.x` around `toYaml .`: every key x may hold.
    for dotted in re.findall(r"(?:toYaml|with) \.Values\.([A-Za-z0-9_.]+)", block):
        keys |= set(lookup(values(), dotted))
        keys |= set(lookup(schema(), f"properties.{dotted}.properties"))
    return keys


def test_every_setting_the_configmap_renders_is_an_s3tier_setting() -> None:
    keys = configmap_setting_keys()
    assert {"ram_bytes", "disk_bytes", "upstream"} <= keys
    assert keys <= set(SETTINGS_BY_NAME)


def test_settings_file_from_the_default_values_is_accepted_by_s3tier(tmp_path: Path) -> None:
    chart = values()
    document = {
        **chart["settings"],
        "ram_bytes": f"{chart['cache']['ramMiB']}MiB",  # as configmap.yaml derives them
        "disk_bytes": f"{chart['cache']['diskGiB']}GiB",
        "workers": chart["workers"],
    }
    path = tmp_path / "s3tier.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    settings = Settings.from_sources({"host": "0.0.0.0"}, {"HOME": str(tmp_path)}, str(path))
    assert settings.ram_bytes == chart["cache"]["ramMiB"] * 2**20
    assert settings.auth == "sigv4", "standalone listens on 0.0.0.0, so signatures are checked"


def test_every_flag_the_chart_and_the_sidecar_example_pass_is_an_s3tier_flag() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    flags = set(re.findall(r"^\s+- (--[a-z-]+)=", helpers, re.MULTILINE))
    flags |= set(flag_values(sidecar_container()["args"]))
    known = {setting.flag for setting in SETTINGS} | {CONFIG_FLAG}
    assert {"--host", "--port", "--disk-dir", "--auth", "--config"} <= flags <= known


def test_every_included_template_is_defined() -> None:
    text = template_text()
    defined = set(re.findall(r'define "([^"]+)"', text))
    included = set(re.findall(r'include "([^"]+)"', text))
    assert included <= defined


@pytest.mark.parametrize("path", sorted(TEMPLATES.iterdir()), ids=lambda path: path.name)
def test_template_actions_open_and_close_in_pairs(path: Path) -> None:
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", path.read_text(encoding="utf-8"), flags=re.S)
    assert text.count("{{") == text.count("}}")
    actions = re.findall(r"\{\{-?\s*(\w+)", text)
    openers = sum(action in ("if", "with", "range", "define", "block") for action in actions)
    assert openers == actions.count("end")


def test_container_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    probes = dict(re.findall(r"(\w+Probe):\s*\n\s*\{\{-? include \"s3tier.probe\" \(dict "
                             r"\"root\" \. \"path\" \"([^\"]+)\"", helpers))  # fmt: skip
    assert probes == {
        "startupProbe": "/_s3tier/healthz",
        "livenessProbe": "/_s3tier/healthz",
        "readinessProbe": "/_s3tier/readyz",
    }


STANDALONE_ONLY = ("deployment.yaml", "statefulset.yaml", "service.yaml", "serviceaccount.yaml",
                   "servicemonitor.yaml", "service-peers.yaml",
                   "poddisruptionbudget.yaml")  # fmt: skip
EVERY_MODE = ("configmap.yaml", "secret.yaml", "dashboard-configmap.yaml")


@pytest.mark.parametrize("name", STANDALONE_ONLY)
def test_workloads_and_their_service_render_only_in_standalone_mode(name: str) -> None:
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    first_condition = re.search(r"\{\{-? if (.*?) -?\}\}", text)
    assert first_condition and 'eq .Values.mode "standalone"' in first_condition[1]


@pytest.mark.parametrize("name", EVERY_MODE)
def test_configuration_and_dashboard_render_in_both_modes(name: str) -> None:
    assert ".Values.mode" not in (TEMPLATES / name).read_text(encoding="utf-8")


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar_and_ships_the_json() -> None:
    text = (TEMPLATES / "dashboard-configmap.yaml").read_text(encoding="utf-8")
    assert re.search(r'^\s+grafana_dashboard: "1"$', text, re.MULTILINE)
    (shipped,) = re.findall(r'\.Files\.Get "([^"]+)"', text)
    assert CHART / shipped == DASHBOARD


def test_servicemonitor_scrapes_the_metrics_endpoint_of_the_service_port() -> None:
    text = (TEMPLATES / "servicemonitor.yaml").read_text(encoding="utf-8")
    assert "apiVersion: monitoring.coreos.com/v1" in text and "kind: ServiceMonitor" in text
    assert "path: /_s3tier/metrics" in text and "port: http" in text
    assert "name: http" in (TEMPLATES / "service.yaml").read_text(encoding="utf-8")


# --- the fleet mode ----------------------------------------------------------------------------


def helper(name: str) -> str:
    """The text of one `define` in _helpers.tpl: up to the next define or comment."""
    text = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    body = text.split(f'{{{{- define "{name}" -}}}}', 1)[1]
    return re.split(r"^\{\{(?:- define|/\*)", body, maxsplit=1, flags=re.MULTILINE)[0]


def go_printf(template: str, *args: object) -> str:
    """Go's printf for the verbs the chart uses (%s, %d)."""
    left = list(args)
    return re.sub(r"%[sd]", lambda _: str(left.pop(0)), template)


def test_a_fleet_runs_as_a_statefulset_governed_by_its_headless_peers_service() -> None:
    sts = (TEMPLATES / "statefulset.yaml").read_text(encoding="utf-8")
    assert 'include "s3tier.usesStatefulSet"' in sts
    assert re.search(r"if \.Values\.fleet\.enabled \}\}\s*serviceName: \{\{ include "
                     r'"s3tier.peersService"', sts)  # fmt: skip
    uses = helper("s3tier.usesStatefulSet")
    assert ".Values.fleet.enabled" in uses and ".Values.persistence.enabled" in uses
    assert "volumeClaimTemplates" in sts and 'include "s3tier.claimsVolume"' in sts
    peers = (TEMPLATES / "service-peers.yaml").read_text(encoding="utf-8")
    assert "clusterIP: None" in peers and "publishNotReadyAddresses: false" in peers
    assert 'name: {{ include "s3tier.peersService" . }}' in peers
    assert "app.kubernetes.io/component: peers" in peers
    monitor = (TEMPLATES / "servicemonitor.yaml").read_text(encoding="utf-8")
    assert "operator: NotIn, values: [peers]" in monitor  # each pod scraped once


def test_every_member_advertises_the_id_the_others_list_it_under() -> None:
    # The member list and each pod's --advertise must name a pod the same way: the member id
    # is what block ownership hashes. Rendered here with Go's printf verbs, for pod 2 of 3.
    (listed,) = re.findall(r'printf "([^"]+)"', helper("s3tier.members"))
    name, service, namespace, port = "rel-s3tier", "rel-s3tier-peers", "storage", 8080
    members = [go_printf(listed, "https", name, i, service, namespace, port) for i in range(3)]
    container = helper("s3tier.container")
    (advertise,) = re.findall(r"- --advertise=(.*)", container.split("else if .Values.fleet")[1])
    advertise = advertise.split("\n")[0]
    rendered = (
        advertise.replace('{{ include "s3tier.scheme" . }}', "https")
        .replace("$(S3TIER_POD_NAME)", f"{name}-2")
        .replace('{{ include "s3tier.peersService" . }}', service)
        .replace("{{ .Release.Namespace }}", namespace)
        .replace("{{ int .Values.port }}", str(port))
    )
    assert rendered == members[2] == f"https://{name}-2.{service}.{namespace}.svc:{port}"
    parsed = MemberSource.parse(",".join(members))
    assert rendered in parsed.members and len(parsed.members) == 3
    env = container.split("  env:")[1]
    assert env.index("S3TIER_POD_NAME") < env.index("S3TIER_PEER_SECRET")
    assert "fieldPath: metadata.name" in env and "fieldPath: status.podIP" in env


def test_the_peer_secret_is_rendered_into_the_secret_under_the_key_the_container_reads() -> None:
    secret = (TEMPLATES / "secret.yaml").read_text(encoding="utf-8")
    assert re.search(r"^  peer-secret: \{\{ required ", secret, re.MULTILINE)
    assert "peer-secret" in helper("s3tier.peerSecretKey")
    assert 'name: {{ include "s3tier.peerSecretName" . }}' in helper("s3tier.container")
    assert "fleet.peerSecret" not in (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")


def test_a_fleet_has_a_disruption_budget_and_spreads_over_nodes() -> None:
    pdb = (TEMPLATES / "poddisruptionbudget.yaml").read_text(encoding="utf-8")
    assert "kind: PodDisruptionBudget" in pdb and "apiVersion: policy/v1" in pdb
    assert "maxUnavailable: {{ int .Values.fleet.maxUnavailable }}" in pdb
    spread = helper("s3tier.antiAffinity")
    assert "kubernetes.io/hostname" in spread
    assert "requiredDuringSchedulingIgnoredDuringExecution" in spread
    assert "preferredDuringSchedulingIgnoredDuringExecution" in spread
    assert values()["fleet"] == {
        "enabled": False, "peerSecret": "", "existingSecret": {"name": "", "key": ""},
        "sidecarPeers": "", "maxUnavailable": 1, "antiAffinity": "soft",
    }  # fmt: skip


def test_a_sidecar_joins_a_fleet_through_the_same_flags_on_an_address_its_peers_reach() -> None:
    container = helper("s3tier.container")
    sidecar = container.split("if and .Values.fleet.enabled $sidecar")[1].split("else if")[0]
    assert "--peers=dns:" in sidecar and ".Values.fleet.sidecarPeers" in sidecar
    assert "--advertise=" in sidecar and "$(S3TIER_POD_IP)" in sidecar
    host = helper("s3tier.host")
    assert "not .Values.fleet.enabled" in host  # a fleet's sidecar listens on 0.0.0.0


def test_tls_mounts_the_secret_as_a_directory_and_probes_and_scrapes_over_https() -> None:
    container = helper("s3tier.container")
    for flag in ("--tls-cert", "--tls-key", "--tls-ca"):
        assert f'- {flag}={{{{ include "s3tier.tlsDir" . }}}}/' in container
    mount = container.split("name: s3tier-tls")[1].split("- name:")[0]
    assert "subPath" not in mount  # a subPath mount never sees a renewed Secret
    assert 'scheme: {{ upper (include "s3tier.scheme" $root) }}' in helper("s3tier.probe")
    monitor = (TEMPLATES / "servicemonitor.yaml").read_text(encoding="utf-8")
    assert "scheme: https" in monitor and "key: ca.crt" in monitor


# --- the dashboard -----------------------------------------------------------------------------


def test_dashboard_is_recent_grafana_json_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_dashboard_panel_queries_through_the_datasource_variable() -> None:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            assert panel["datasource"]["uid"] == target["datasource"]["uid"] == "${datasource}"


def metric_names(expr: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bs3tier_[a-z0-9_]+", expr):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def test_every_metric_the_dashboard_queries_is_one_s3tier_exports() -> None:
    used = set().union(*map(metric_names, dashboard_exprs()))
    assert used and used <= METRICS, sorted(used - METRICS)


# What the issue asks the dashboard to show, as (panel title words, a regex its query matches).
DASHBOARD_VIEWS = [
    ("hit ratio by tier", r"s3tier_cache_results_total"),
    ("bytes served by tier", r"s3tier_served_bytes_total"),
    ("latency", r"histogram_quantile\(.*by \(le, result\).*s3tier_response_duration_\w+_bucket"),
    ("upstream errors", r"s3tier_upstream_errors_total"),
    ("evictions", r"s3tier_evictions_total"),
    ("prefetch efficiency", r'outcome="used".*/.*outcome="issued"'),
    ("tier fill", r"s3tier_tier_usage_bytes"),
    ("peer block requests", r"s3tier_peer_requests_total"),
    ("peer fetch latency", r"histogram_quantile\(.*s3tier_peer_request_duration_seconds_bucket"),
    ("open circuits", r"s3tier_peer_circuits_open"),
]


@pytest.mark.parametrize(("title", "query"), DASHBOARD_VIEWS)
def test_dashboard_has_each_view_the_issue_asks_for(title: str, query: str) -> None:
    panels = [p for p in dashboard()["panels"] if title in p["title"].lower()]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert any(re.search(query, expr) for expr in exprs), f"no {title!r} panel querying {query}"


def test_bytes_panel_sets_bytes_served_by_tier_against_upstream_bytes() -> None:
    (panel,) = [p for p in dashboard()["panels"] if p["title"].lower().startswith("bytes served")]
    exprs = " ".join(t["expr"] for t in panel["targets"])
    assert "by (tier)" in exprs and "s3tier_served_bytes_total" in exprs
    assert "s3tier_upstream_received_bytes_total" in exprs


# --- the sidecar example -----------------------------------------------------------------------


def test_sidecar_example_is_a_pod_with_s3tier_on_loopback_port_8080_without_auth() -> None:
    assert sidecar_pod()["kind"] == "Pod"
    container = sidecar_container()
    flags = flag_values(container["args"])
    assert container["args"][0] == "serve"
    assert (flags["--host"], int(flags["--port"]), flags["--auth"]) == (
        "127.0.0.1", Settings().port, "none",
    )  # fmt: skip


def test_sidecar_example_application_uses_s3tier_as_its_s3_endpoint() -> None:
    apps = [c for c in sidecar_pod()["spec"]["containers"] if c["name"] != "s3tier"]
    endpoints = {e.get("value") for c in apps for e in c.get("env", [])}
    assert f"http://127.0.0.1:{Settings().port}" in endpoints


def test_sidecar_example_mounts_the_disk_dir_on_a_node_local_volume() -> None:
    container = sidecar_container()
    disk_dir = flag_values(container["args"])["--disk-dir"]
    assert disk_dir == only("VOLUME")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == disk_dir]
    (volume,) = [v for v in sidecar_pod()["spec"]["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume or "hostPath" in volume


def test_sidecar_example_mounts_the_config_file_its_args_name() -> None:
    container = sidecar_container()
    config = Path(flag_values(container["args"])[CONFIG_FLAG])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config.parent]
    (volume,) = [v for v in sidecar_pod()["spec"]["volumes"] if v["name"] == mount["name"]]
    assert "configMap" in volume


def test_sidecar_example_probes_run_inside_the_container() -> None:
    # kubelet's httpGet probes connect to the pod IP, which a loopback listener never hears.
    container = sidecar_container()
    commands = {
        probe: " ".join(container[probe]["exec"]["command"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert "/_s3tier/healthz" in commands["livenessProbe"]
    assert "/_s3tier/readyz" in commands["readinessProbe"]
    assert all(f"http://127.0.0.1:{Settings().port}/" in command for command in commands.values())


def test_sidecar_example_runs_as_the_image_user() -> None:
    context = sidecar_container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == values()["securityContext"]["runAsUser"]


def test_chart_readme_and_notes_show_sidecar_users_the_loopback_endpoint() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    notes = (TEMPLATES / "NOTES.txt").read_text(encoding="utf-8")
    assert "examples/sidecar-pod.yaml" in readme and "examples/sidecar-pod.yaml" in notes
    assert "http://127.0.0.1:8080" in readme and "http://127.0.0.1:" in notes


# Settings the chart sets from values of its own (addresses, sizes in MiB/GiB, auth block,
# workers), not under `settings`.
# peer_secret never goes into the ConfigMap: S3TIER_PEER_SECRET comes from a Secret (fleet.*);
# the tls_* files are the mounted tls.secretName.
SET_ELSEWHERE = frozenset(
    {"host", "port", "disk_dir", "disk_bytes", "ram_bytes", "workers", "auth",
     "credentials_file", "admin_token", "peer_secret", "tls_cert", "tls_key", "tls_ca"}
)  # fmt: skip


def test_every_setting_can_be_given_through_the_chart() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    settable = set(schema["properties"]["settings"]["properties"])
    missing = {s.name for s in SETTINGS} - settable - SET_ELSEWHERE
    assert not missing, f"add to values.schema.json settings: {sorted(missing)}"
