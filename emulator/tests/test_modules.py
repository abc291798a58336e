"""The emulator's parts: one job a module, and the old entry point still importable."""

from __future__ import annotations

import ast
from pathlib import Path

import emulator.server as server
from emulator.listeners import Emulator

PACKAGE = Path(__file__).resolve().parents[1]


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    return {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_server_keeps_exporting_the_emulator():
    assert server.Emulator is Emulator
    for name in server.__all__:
        assert hasattr(server, name), name


def test_the_apis_do_not_know_the_listeners():
    for module in ("graph_api", "admin_api", "identity", "wire"):
        assert "listeners" not in _imports(module), module
        assert "server" not in _imports(module), module
