"""docker-compose.yaml is consistent: volumes, dependencies, variables, shared Airflow settings, Dockerfile."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}; not $${...} (escaped).
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, _ = line.partition("=")
        assert sep, f".env.example line is not NAME=value: {line!r}"
        names.add(name.strip())
    return names


def _volume_source(entry) -> tuple[str | None, str]:
    """(source, kind) of a service volume in short or long syntax; kind is 'bind', 'volume' or 'tmpfs'."""
    if isinstance(entry, dict):
        kind = entry.get("type", "volume")
        return entry.get("source"), kind
    parts = str(entry).split(":")
    if len(parts) == 1:
        return None, "volume"  # anonymous volume: a container path only
    source = parts[0]
    if source.startswith((".", "/", "~")):
        return source, "bind"
    return source, "volume"


def _environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def test_compose_file_has_services_and_volumes(compose):
    assert compose.get("services"), "no services"
    assert isinstance(compose.get("volumes"), dict), "no top-level named volumes"


def test_expected_services_exist(services):
    assert AIRFLOW_SERVICES | {"postgres", "samba-dc", "emulator"} <= set(services)


def test_volumes_are_declared_or_existing_relative_paths(compose, services):
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, service in services.items():
        for entry in service.get("volumes") or []:
            source, kind = _volume_source(entry)
            if source is None or kind == "tmpfs":
                continue
            if kind == "bind":
                if not source.startswith("./") and source != ".":
                    problems.append(
                        f"{name}: bind mount {source!r} is not a relative path"
                    )
                elif not (ROOT / source).exists():
                    problems.append(f"{name}: bind mount {source!r} does not exist")
            elif source not in declared:
                problems.append(f"{name}: named volume {source!r} is not declared")
    assert not problems, "\n".join(problems)


def test_depends_on_names_services(services):
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or []
        targets = list(depends) if isinstance(depends, (list, dict)) else [depends]
        for target in targets:
            if target not in services:
                problems.append(f"{name} depends on unknown service {target!r}")
            if target == name:
                problems.append(f"{name} depends on itself")
    assert not problems, "\n".join(problems)


def test_variables_are_defined_or_have_defaults():
    defined = _env_example_names()
    text = COMPOSE_FILE.read_text()
    problems = []
    for match in VARIABLE.finditer(text):
        name, operator = match.group(1), match.group(2)
        if operator in ("-", ":-"):
            continue
        if name not in defined:
            problems.append(
                f"${{{name}}} is neither in .env.example nor given a default"
            )
    assert not problems, "\n".join(problems)
    # A bare $NAME (without braces) would escape this check.
    assert not re.search(r"(?<!\$)\$[A-Za-z_]", text), (
        "use ${NAME}, or $$ to escape a dollar"
    )


def test_env_example_holds_the_connections():
    names = _env_example_names()
    assert {"AIRFLOW_CONN_MSGRAPH_TENANT", "AIRFLOW_CONN_LDAP_DOMAIN"} <= names


def test_airflow_services_share_the_common_environment(compose, services):
    common = compose["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"]
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        missing = {k: v for k, v in common.items() if env.get(k) != v}
        assert not missing, (
            f"{name} differs from x-airflow-common environment in {sorted(missing)}"
        )
        assert (
            "AIRFLOW_CONN_MSGRAPH_TENANT" in env and "AIRFLOW_CONN_LDAP_DOMAIN" in env
        )
        assert env["PYTHONPATH"] == "/opt/airflow/include:/opt/airflow"


def test_database_url_points_at_postgres_service(compose, services):
    url = compose["x-airflow-common"]["environment"][
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    ]
    parsed = urlsplit(url)
    assert parsed.scheme.startswith("postgresql")
    host = parsed.netloc.rpartition("@")[2].split(":")[0]
    assert host == "postgres" and host in services
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name].get("depends_on") or {}
        assert "airflow-init" in depends, f"{name} does not wait for airflow-init"
    assert "postgres" in (services["airflow-init"].get("depends_on") or {})


def test_airflow_services_mount_project_folders(compose):
    volumes = compose["x-airflow-common"]["volumes"]
    for folder in ("dags", "plugins", "include", "emulator"):
        assert f"./{folder}:/opt/airflow/{folder}" in volumes


def test_dockerfiles_exist(services):
    built = 0
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        built += 1
    assert built, "no service builds the project image"


def test_dockerfile_installs_pinned_requirements():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM apache/airflow:3\.3\.2-python3\.11\s*$", text)
    assert "requirements.txt" in text and "-c " in text and "constraints.txt" in text


def _settings_defaults() -> dict[str, str]:
    """DOMAIN_SYNC_<NAME> -> the default the code gives it (as the text of an environment variable)."""
    from domain_sync.config import Settings
    from domain_sync.ops_settings import OpsSettings

    return {f"DOMAIN_SYNC_{f.name.upper()}": str(getattr(cls(), f.name))
            for cls in (Settings, OpsSettings) for f in fields(cls)}


def test_domain_sync_variables_of_compose_are_settings_with_the_code_defaults(compose):
    """A variable the code does not read is a typo; a compose default other than the code's is a second default."""
    defaults = _settings_defaults()
    for name, value in compose["x-airflow-common"]["environment"].items():
        if not name.startswith("DOMAIN_SYNC_") or name == "DOMAIN_SYNC_APPLY_POOL":  # read by domain_sync.tasks
            continue
        assert name in defaults, f"{name} is not a setting (docs/settings.md)"
        match = VARIABLE.fullmatch(str(value))
        assert match and match.group(1) == name and match.group(2) == ":-", (
            f"{name}: pass it from .env as ${{{name}:-<default>}}")
        assert match.group(3) == defaults[name], f"{name}: compose default {match.group(3)!r}, code {defaults[name]!r}"


def test_domain_sync_variables_of_env_example_reach_the_airflow_services(compose):
    """A setting in .env that compose does not pass on would silently do nothing."""
    passed = set(compose["x-airflow-common"]["environment"])
    defaults = _settings_defaults()
    for name in sorted(n for n in _env_example_names() if n.startswith("DOMAIN_SYNC_")):
        assert name in defaults, f".env.example: {name} is not a setting (docs/settings.md)"
        assert name in passed, f".env.example sets {name} but docker-compose.yaml does not pass it on"
