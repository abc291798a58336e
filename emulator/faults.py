"""Scripted faults: throttling, server errors, slow answers, dropped connections, a refused client.

A rule (JSON, see README.md):

    {"kind": "throttle" | "error" | "delay" | "drop" | "refuse_token",
     "target": "graph" | "token" | "vault",   listener the rule applies to (default graph; refuse_token: token)
     "path": "/v1.0/users/delta",   path prefix (default: every path of the target; never /admin)
     "method": "GET",               only this HTTP method (default: any)
     "count": 3,                    fire on the next N matching requests, then retire (default: unlimited)
     "rate": 0.25,                  probability of firing per matching request (default: 1)
     "seed": 0,                     seed of the rule's own random generator (default: 0)
     "status": 503,                 error: 4xx/5xx status (default 500); throttle: default 429
     "code": "...",                 error code in the Graph error body (default by status)
     "retry_after": 2,              throttle/error: Retry-After seconds; absent or null: no header
     "delay": 1.5}                  delay: seconds to wait, then answer normally

Rules are checked in the order they were added. Every firing delay rule adds its delay; the first
firing rule of another kind decides the answer. A rule counts down only when it fires.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("throttle", "error", "delay", "drop", "refuse_token")
TARGETS = ("graph", "token", "vault")

_DEFAULT_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    409: "Conflict",
    410: "syncStateNotFound",
    429: "TooManyRequests",
    500: "generalException",
    502: "badGateway",
    503: "serviceNotAvailable",
    504: "gatewayTimeout",
}


def default_code(status: int) -> str:
    return _DEFAULT_CODES.get(status, "UnknownError")


class FaultSpecError(ValueError):
    pass


@dataclass
class Rule:
    id: int
    kind: str
    target: str = "graph"
    path: str = ""
    method: str | None = None
    count: int | None = None
    rate: float = 1.0
    seed: int = 0
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def describe(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "path": self.path,
            "method": self.method,
            "count": self.count,
            "rate": self.rate,
            "seed": self.seed,
            "fired": self.fired,
        }
        if self.kind in ("throttle", "error"):
            out["status"] = self.status
            out["code"] = self.code
            out["retry_after"] = self.retry_after
        if self.kind == "delay":
            out["delay"] = self.delay
        return out


@dataclass
class Decision:
    delay: float = 0.0
    rule: Rule | None = None  # the rule deciding the answer (not a delay rule), if any


def _number(spec: dict, key: str, default: Any, *, minimum: float = 0.0, integer: bool = False) -> Any:
    value = spec.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"'{key}' must be a number")
    if value < minimum:
        raise FaultSpecError(f"'{key}' must be at least {minimum}")
    if integer:
        if int(value) != value:
            raise FaultSpecError(f"'{key}' must be an integer")
        return int(value)
    return float(value)


class FaultSet:
    """The active rules of one emulator; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._ids = itertools.count(1)

    def parse(self, spec: Any) -> Rule:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault rule must be a JSON object")
        unknown = set(spec) - {
            "kind", "target", "path", "method", "count", "rate", "seed", "status", "code", "retry_after", "delay",
        }
        if unknown:
            raise FaultSpecError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultSpecError(f"'kind' must be one of {', '.join(KINDS)}")
        target = spec.get("target", "token" if kind == "refuse_token" else "graph")
        if target not in TARGETS:
            raise FaultSpecError(f"'target' must be one of {', '.join(TARGETS)}")
        if kind == "refuse_token" and target != "token":
            raise FaultSpecError("refuse_token applies to the token target only")
        path = spec.get("path", "") or ""
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise FaultSpecError("'path' must be a path prefix starting with '/'")
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            raise FaultSpecError("'method' must be a string")
        count = spec.get("count")
        if count is not None:
            count = _number(spec, "count", None, minimum=1, integer=True)
        rate = _number(spec, "rate", 1.0)
        if rate > 1:
            raise FaultSpecError("'rate' must be between 0 and 1")
        seed = _number(spec, "seed", 0, minimum=-(2**63), integer=True)
        status = None
        code = None
        retry_after = None
        delay = 0.0
        if kind in ("throttle", "error"):
            status = _number(spec, "status", 429 if kind == "throttle" else 500, minimum=400, integer=True)
            if status > 599:
                raise FaultSpecError("'status' must be a 4xx or 5xx status")
            code = spec.get("code") or default_code(status)
            if spec.get("retry_after") is not None:
                retry_after = _number(spec, "retry_after", None)
        if kind == "delay":
            if "delay" not in spec:
                raise FaultSpecError("a delay rule needs 'delay' (seconds)")
            delay = _number(spec, "delay", 0.0)
        return Rule(
            id=next(self._ids),
            kind=kind,
            target=target,
            path=path,
            method=method.upper() if method else None,
            count=count,
            rate=rate,
            seed=seed,
            status=status,
            code=code,
            retry_after=retry_after,
            delay=delay,
            rng=random.Random(seed),
        )

    def add(self, specs: Any) -> list[dict[str, Any]]:
        """Add one rule, a list of rules, or {"faults": [...]}; all or nothing."""
        if isinstance(specs, dict) and "faults" in specs:
            specs = specs["faults"]
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list):
            raise FaultSpecError("expected a rule, a list of rules or {\"faults\": [...]}")
        with self._lock:
            rules = [self.parse(spec) for spec in specs]
            self._rules.extend(rules)
            return [r.describe() for r in rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def decide(self, target: str, method: str, path: str) -> Decision:
        decision = Decision()
        with self._lock:
            if not self._rules:
                return decision
            for rule in list(self._rules):
                if rule.target != target or not path.startswith(rule.path):
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.kind != "delay" and decision.rule is not None:
                    continue
                if rule.rate < 1.0 and rule.rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                if rule.kind == "delay":
                    decision.delay += rule.delay
                else:
                    decision.rule = rule
        return decision
