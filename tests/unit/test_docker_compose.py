"""docker-compose.yaml is consistent: volumes, dependencies, variables, shared Airflow settings, Dockerfile, profiles
(celery, demo), the Airflow commands, the executor, the Celery workers and the demo's object storage."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

CORE_AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
WORKERS = {"airflow-worker-1", "airflow-worker-2"}
AIRFLOW_SERVICES = CORE_AIRFLOW_SERVICES | WORKERS | {"flower"}
PROFILES = {
    None: CORE_AIRFLOW_SERVICES | {"postgres"},
    "celery": WORKERS | {"redis", "flower"},
    "demo": {"samba-dc", "emulator", "azurite"},
}
# The image's AIRFLOW_HOME (apache/airflow): the code's defaults that depend on it are computed for it.
IMAGE_AIRFLOW_HOME = "/opt/airflow"

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


def _profile(service: dict) -> str | None:
    profiles = service.get("profiles") or []
    assert len(profiles) <= 1, f"a service in several profiles: {profiles}"
    return profiles[0] if profiles else None


def _depends_on(service: dict) -> dict:
    depends = service.get("depends_on") or {}
    return {name: {} for name in depends} if isinstance(depends, list) else depends


def test_expected_services_exist(services):
    assert set().union(*PROFILES.values()) == set(services)


def test_profiles(services):
    """The core (no profile) is the production shape; celery adds the broker, two workers and Flower; demo the
    domain, the tenant and the object storage."""
    for profile, names in PROFILES.items():
        for name in names:
            assert _profile(services[name]) == profile, f"{name}: profile {_profile(services[name])}, not {profile}"


def test_dependencies_on_another_profile_are_optional(services):
    """A service may need one of another profile only when that profile runs (required: false); otherwise
    `docker compose up` without the profile would refuse to start."""
    for name, service in services.items():
        for target, spec in _depends_on(service).items():
            other = _profile(services[target])
            if other is not None and other != _profile(service):
                assert spec.get("required") is False, f"{name} needs {target} (profile {other}): add required: false"
            else:
                assert spec.get("required", True) is True, f"{name}: {target} runs with it, it should be required"


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


def test_every_variable_is_documented_in_env_example():
    """Every variable compose reads is set, with its comment, in .env.example (the place they are documented)."""
    names = _env_example_names()
    lines = ENV_EXAMPLE.read_text().splitlines()
    used = {match.group(1) for match in VARIABLE.finditer(COMPOSE_FILE.read_text())}
    missing = sorted(used - names)
    assert not missing, f"compose reads {missing}; set and explain them in .env.example"
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and line.partition("=")[0] in used:
            block = lines[:index]
            while block and not block[-1].startswith("#"):
                assert block[-1].strip() and "=" in block[-1], f".env.example: {line.partition('=')[0]} has no comment"
                block.pop()
            assert block, f".env.example: {line.partition('=')[0]} has no comment above it"


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


def _interpolate(text: str) -> str:
    """`text` with compose's variables replaced as with .env.example as .env (else their defaults)."""
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#"))
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(3) or ""), text)


def _airflow_commands(name: str, service: dict) -> list[list[str]]:
    """The airflow CLI invocations of a service: its command (the image's entrypoint runs `airflow ...`), or
    each `airflow` line of a bash script."""
    command = service.get("command")
    entrypoint = service.get("entrypoint")
    if entrypoint:
        assert entrypoint[0] == "/bin/bash", f"{name}: entrypoint {entrypoint}"
        script = _interpolate(command[0] if isinstance(command, list) else command)
        return [shlex.split(line)[1:] for line in script.splitlines() if line.strip().startswith("airflow ")]
    return [[_interpolate(arg) for arg in command] if isinstance(command, list) else shlex.split(_interpolate(command))]


def test_airflow_commands_parse(services):
    """Every airflow command in the compose file is one Airflow's own CLI parser takes (the celery provider's
    commands included)."""
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    seen = set()
    for name in sorted(AIRFLOW_SERVICES):
        commands = _airflow_commands(name, services[name])
        assert commands, f"{name}: no airflow command"
        for argv in commands:
            try:
                parser.parse_args(argv)
            except (SystemExit, argparse.ArgumentError):
                pytest.fail(f"{name}: `airflow {shlex.join(argv)}` is not an Airflow command")
            seen.add(tuple(argv[:2]) if argv[0] == "celery" else argv[0])
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "db", "pools",
            ("celery", "worker"), ("celery", "flower")} <= seen


def test_init_creates_the_data_folder_from_the_settings(compose, services):
    script = services["airflow-init"]["command"][0]
    common = compose["x-airflow-common"]["environment"]
    read = set(re.findall(r"os\.environ\['(\w+)'\]", script))
    assert read == {"DOMAIN_SYNC_DATA_DIR", "DOMAIN_SYNC_DATA_CONN_ID"}, read
    assert read <= set(common)
    assert "pools set domain_writes" in script and common["DOMAIN_SYNC_APPLY_POOL"] == "domain_writes"


def test_executor_is_local_by_default_and_celery_is_wired(compose, services):
    common = compose["x-airflow-common"]["environment"]
    match = VARIABLE.fullmatch(common["AIRFLOW__CORE__EXECUTOR"])
    assert match and match.group(1) == "AIRFLOW_EXECUTOR" and match.group(3) == "LocalExecutor"
    env_example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                       if line and not line.startswith("#"))
    assert env_example["AIRFLOW_EXECUTOR"] in ("LocalExecutor", "CeleryExecutor")
    import airflow.providers.celery.executors.celery_executor as celery_executor

    assert celery_executor.CeleryExecutor.__name__ == "CeleryExecutor"
    broker = urlsplit(common["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis" and _profile(services["redis"]) == "celery"
    backend = urlsplit(common["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
    assert backend.hostname == "postgres" and backend.path == urlsplit(
        common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path, "task results go to the Airflow database"


def test_celery_workers_are_distinct_and_share_no_local_folder(compose, services):
    """Two workers with names of their own; what a worker mounts writable, no other service mounts (it keeps
    its task logs; the run folders and the state are on object storage, never in a shared volume)."""
    names = set()
    for name in WORKERS:
        command = services[name]["command"]
        names.add(command[command.index("--celery-hostname") + 1])
        assert services[name]["hostname"] == name
        healthcheck = " ".join(services[name]["healthcheck"]["test"])
        app = re.search(r"--app (\S+)", healthcheck).group(1)
        module, _, attribute = app.rpartition(".")
        import importlib

        assert hasattr(importlib.import_module(module), attribute), f"{name}: no Celery app {app}"
    assert len(names) == len(WORKERS)
    declared = set(compose.get("volumes") or {})
    for name in WORKERS:
        for entry in services[name]["volumes"]:
            source, _ = _volume_source(entry)
            writable = not str(entry).endswith(":ro")
            if source in declared and writable:
                others = [other for other, service in services.items() if other != name and any(
                    _volume_source(e)[0] == source for e in service.get("volumes") or [])]
                assert not others, f"{name} shares the volume {source} with {others}"
        assert not any(_volume_source(e)[0] in ("sync-data", "airflow-logs") for e in services[name]["volumes"])


def test_demo_data_folder_is_on_azurite(compose, services):
    """The demo's data folder is an abfs:// URL through a connection compose passes on, whose endpoint is the
    azurite service's Blob port."""
    env_example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                       if line and not line.startswith("#"))
    assert urlsplit(env_example["DOMAIN_SYNC_DATA_DIR"]).scheme == "abfs"
    conn_variable = f"AIRFLOW_CONN_{env_example['DOMAIN_SYNC_DATA_CONN_ID'].upper()}"
    assert conn_variable in compose["x-airflow-common"]["environment"], f"compose does not pass {conn_variable}"
    connection = json.loads(env_example[conn_variable].strip("'"))
    assert connection["conn_type"] == "azure_data_lake"  # the Azure provider's file system for abfs://
    parts = dict(part.split("=", 1) for part in connection["extra"]["connection_string"].split(";") if part)
    endpoint = urlsplit(parts["BlobEndpoint"])
    command = services["azurite"]["command"]
    assert endpoint.hostname == "azurite" and str(endpoint.port) == command[command.index("--blobPort") + 1]
    assert "azurite" in _depends_on(services["airflow-init"]), "airflow-init creates the container"


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
    # The image runs the Celery workers and Flower too: the Celery provider is among the pinned requirements.
    pins = {line.split("==")[0].lower() for path in ("requirements.txt", "constraints.txt")
            for line in (ROOT / path).read_text().splitlines() if "==" in line and not line.startswith("#")}
    assert {"apache-airflow-providers-celery", "celery", "redis", "flower"} <= pins


def _settings_defaults() -> dict[str, str]:
    """DOMAIN_SYNC_<NAME> -> the default the code gives it in the image (as the text of an environment variable)."""
    from domain_sync.config import Settings
    from domain_sync.ops_settings import OpsSettings

    saved = os.environ.get("AIRFLOW_HOME")
    os.environ["AIRFLOW_HOME"] = IMAGE_AIRFLOW_HOME
    try:
        return {f"DOMAIN_SYNC_{f.name.upper()}": str(getattr(cls(), f.name))
                for cls in (Settings, OpsSettings) for f in fields(cls)}
    finally:
        if saved is None:
            del os.environ["AIRFLOW_HOME"]
        else:
            os.environ["AIRFLOW_HOME"] = saved


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
