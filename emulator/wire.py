"""What the emulator's APIs and listeners exchange: a parsed request, a reply, and Graph's JSON and error shapes."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
OAUTH_JSON_TYPE = "application/json; charset=utf-8"


def encode_json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), check_circular=False).encode("utf-8")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Request:
    """One HTTP request as the APIs see it: the path split into segments, the query parsed, the body read."""

    method: str
    path: str
    query: dict[str, list[str]]
    segments: list[str]
    headers: Message
    body: bytes


@dataclass
class Reply:
    """What a listener sends back: status, body and headers, or nothing at all (drop: close the connection)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


DROP = Reply(status=0, content_type=None, drop=True)


def request_ids(request: Request) -> dict[str, str]:
    rid = str(uuid.uuid4())
    return {"request-id": rid, "client-request-id": request.headers.get("client-request-id") or rid}


def graph_json(request: Request, status: int, doc: Any, headers: dict[str, str] | None = None) -> Reply:
    """A Graph answer: the JSON document (None: an empty body) with request-id headers."""
    hdrs = request_ids(request)
    hdrs.update(headers or {})
    body = b"" if doc is None else encode_json(doc)
    return Reply(status, body, JSON_TYPE, hdrs)


def graph_error(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """A Graph error: {"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}."""
    ids = request_ids(request)
    doc = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now_iso(),
                "request-id": ids["request-id"],
                "client-request-id": ids["client-request-id"],
            },
        }
    }
    hdrs = dict(ids)
    hdrs.update(headers or {})
    return Reply(status, encode_json(doc), JSON_TYPE, hdrs)
