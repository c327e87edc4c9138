"""deploy/: the Dockerfiles lint clean (hadolint), every Kustomize overlay renders (`kubectl kustomize`),
validates against the Kubernetes schemas offline (kubernetes-validate, strict) and passes a security scan
(checkov); a broken manifest or Dockerfile fails each check. The tools live in .venv-deploy
(`scripts/setup.sh test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.servers import ROOT

DEPLOY = ROOT / "deploy"
TOOLS = ROOT / ".venv-deploy" / "bin"
OVERLAYS = ("cpu", "gpu", "milvus")
SERVICES = ("gateway", "detector", "attributes", "style", "search")


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = [
        str(TOOLS / t) for t in ("hadolint", "kubernetes-validate", "checkov") if not (TOOLS / t).is_file()
    ]
    if shutil.which("kubectl") is None:
        missing.append("kubectl")
    if missing:
        reason = f"missing {', '.join(missing)}: run `scripts/setup.sh test` (kubectl: install it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must check deploy/)")
        pytest.skip(reason)


def _run(*command: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300)


def render(overlay: Path) -> tuple[str, list[dict]]:
    rendered = _run("kubectl", "kustomize", overlay)
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout, [d for d in yaml.safe_load_all(rendered.stdout) if d]


def validate(text: str, folder: Path) -> subprocess.CompletedProcess:
    path = folder / "rendered.yaml"
    path.write_text(text)
    return _run(TOOLS / "kubernetes-validate", "--strict", "--quiet", path)


def scan(text: str, folder: Path) -> subprocess.CompletedProcess:
    path = folder / "rendered.yaml"
    path.write_text(text)
    return _run(
        TOOLS / "checkov", "--config-file", DEPLOY / "k8s" / ".checkov.yaml", "-f", path, "--skip-download"
    )


def _by(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_validate_and_pass_the_scan(overlay: str, tmp_path: Path) -> None:
    text, objects = render(DEPLOY / "k8s" / "overlays" / overlay)
    validated = validate(text, tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    scanned = scan(text, tmp_path)
    assert scanned.returncode == 0, scanned.stdout[-3000:]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"kfashion"}
    workloads = _by(objects, "Deployment") | _by(objects, "StatefulSet")
    for name in SERVICES:
        container = workloads[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # never fails while models load
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    scaled = {"gateway", "detector", "attributes", "style"}
    if overlay == "milvus":  # stateless search replicas over Milvus
        assert "search" not in _by(objects, "StatefulSet") and "search" in _by(objects, "Deployment")
        scaled.add("search")
    else:  # the search service holds its indexes: one replica with a volume
        assert _by(objects, "StatefulSet")["search"]["spec"]["volumeClaimTemplates"]
    assert set(_by(objects, "HorizontalPodAutoscaler")) == scaled
    policies = _by(objects, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    open_to_all = [
        p for p in policies.values() if any("from" not in rule for rule in p["spec"].get("ingress", []))
    ]
    assert [p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in open_to_all] == [
        "gateway"
    ]
    backend = _by(objects, "Ingress")["kfashion"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "gateway"
    settings = next(iter(_by(objects, "ConfigMap").values()))["data"]
    if overlay == "gpu":
        triton = _by(objects, "Deployment")["triton"]["spec"]["template"]["spec"]["containers"][0]
        assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert settings["KFASHION_RUNTIME__BACKEND"] == "triton"
    elif overlay == "milvus":
        assert settings["KFASHION_SEARCH__BACKEND"] == "milvus"
        assert settings["KFASHION_SEARCH__MILVUS_URI"].startswith("http://milvus.")
    else:
        assert "KFASHION_RUNTIME__BACKEND" not in settings
        assert all(d["spec"]["replicas"] == 1 for d in _by(objects, "Deployment").values())


def _broken_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", copy)
    path = copy / "base" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return copy / "overlays" / "cpu"


def test_a_manifest_off_the_schema_fails_validation(tmp_path: Path) -> None:
    overlay = _broken_copy(
        tmp_path, "search.yaml", "  serviceName: search\n", "  serviceName: search\n  replica: 1\n"
    )
    text, _ = render(overlay)
    result = validate(text, tmp_path)
    assert result.returncode != 0 and "replica" in result.stdout + result.stderr


def test_an_insecure_manifest_fails_the_scan(tmp_path: Path) -> None:
    overlay = _broken_copy(tmp_path, "style.yaml", "allowPrivilegeEscalation: false", "privileged: true")
    text, _ = render(overlay)
    assert validate(text, tmp_path).returncode == 0  # valid Kubernetes, but not acceptable
    result = scan(text, tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_lint_clean_and_build_every_service(dockerfile: str) -> None:
    path = DEPLOY / "docker" / dockerfile
    result = _run(TOOLS / "hadolint", path)
    assert result.returncode == 0, result.stdout
    text = path.read_text()
    assert {
        line.split(" AS ")[1].strip() for line in text.splitlines() if line.startswith("FROM runtime AS ")
    } == set(SERVICES)
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text and ":latest" not in text


def test_a_broken_dockerfile_fails_the_lint(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install curl\nRUN pip install fastapi\n"
    )
    result = _run(TOOLS / "hadolint", broken)
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3013"} <= {
        code for code in ("DL3007", "DL3008", "DL3013") if code in result.stdout
    }
