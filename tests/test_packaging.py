"""The install artefacts say what the docs say: every dependency pinned in constraints.txt and
used by CI and the image; the image runs unprivileged with portal and metrics on loopback and a
health check; the systemd unit parses and keeps its stop timeout and restart policy.

Docker is not available in CI, so the Dockerfile is checked as text, not built."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from siprec_recorder.config import build_config
from siprec_recorder.preflight import exposure_warnings

ROOT = Path(__file__).resolve().parents[1]


def pinned() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: not an exact pin: {line!r}"
            out[canonicalize_name(name)] = version
    return out


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    # An extra that pulls in another extra names the project itself; that is no dependency.
    own = canonicalize_name(project["name"])
    reqs = [r for r in reqs if canonicalize_name(Requirement(r).name) != own]
    pins = pinned()
    missing = [r for r in reqs if canonicalize_name(Requirement(r).name) not in pins]
    assert not missing, f"not in constraints.txt (run bash scripts/lock-deps): {missing}"
    for r in reqs:
        req = Requirement(r)
        version = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (r, version)


def test_ci_and_image_install_with_the_constraints() -> None:
    assert "-c constraints.txt" in (ROOT / "scripts" / "run-tests").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()


def dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_layers_runs_unprivileged_and_checks_health() -> None:
    lines = dockerfile()
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY")]
    deps = next(i for i, line in enumerate(lines) if "pip install" in line)
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY siprec_recorder"))
    assert deps < code, "dependencies must be installed before the code is copied"
    assert "constraints.txt" in lines[copies[0]] and "siprec_recorder" not in lines[copies[0]]
    assert '".[postgres]"' in lines[deps], "the image needs the PostgreSQL driver"
    user = [line for line in lines if line.startswith("USER")]
    assert user and user[-1] != "USER root"
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    env = " ".join(line for line in lines if line.startswith("ENV"))
    assert "SIPREC__WEB__LISTEN=127.0.0.1:" in env
    assert "SIPREC__METRICS__LISTEN=127.0.0.1:" in env
    assert "SIPREC__STORAGE__CREATE_RECORDINGS_DIR=false" in env
    assert not re.search(r"EXPOSE[^\n]*(8080|9160)", "\n".join(lines))


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".git", ".venv", "recordings", "tests", "bench"):
        assert name in ignored
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "siprec_recorder", "config"):
        assert needed not in ignored


def test_systemd_unit(tmp_path: Path) -> None:
    unit = (ROOT / "packaging" / "systemd" / "siprec-recorder.service").read_text()
    for setting in (
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert setting in unit.splitlines(), setting
    timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert timeout >= 120
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    # verify needs the programs to exist; point ExecStart at one that does.
    copy = tmp_path / "siprec-recorder.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit, flags=re.M))
    res = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in (res.stdout + res.stderr).splitlines() if "siprec-recorder.service" in line
    ]
    assert not problems, problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, []),
        ({"sip": {"listen": ["udp:0.0.0.0:5060"]}}, ["[sip] allowed_sources is empty"]),
        ({"sip": {"listen": ["udp:0.0.0.0:5060"], "allowed_sources": ["10.0.0.0/8"]}}, []),
        ({"web": {"listen": "0.0.0.0:8080"}}, ["[web] listen 0.0.0.0:8080: the portal"]),
        ({"web": {"listen": "0.0.0.0:8080", "enabled": False}}, []),
        ({"metrics": {"listen": "[::]:9160"}}, ["[metrics] listen [::]:9160: metrics"]),
    ],
)
def test_exposure_warnings(data: dict[str, object], expected: list[str]) -> None:
    warnings = exposure_warnings(build_config(data))
    assert len(warnings) == len(expected)
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start)
