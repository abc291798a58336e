"""The emulator assembled: kept for the names older code imports from here.

The parts live in their own modules: emulator.listeners (the HTTP/HTTPS listeners, dispatch and the
Emulator that runs them), emulator.graph_api (Microsoft Graph v1.0), emulator.admin_api (tenant
changes, faults, settings, stats), emulator.identity (token endpoint, OpenID discovery, tokens) and
emulator.wire (requests, replies and Graph's JSON shapes).
"""

from __future__ import annotations

from .graph_api import MAX_TOP, GraphApi
from .identity import TOKEN_LIFETIME, IdentityApi, TokenIssuer
from .listeners import Emulator, GraphHandler, Stats, TokenHandler
from .wire import JSON_TYPE, OAUTH_JSON_TYPE, encode_json

__all__ = [
    "JSON_TYPE",
    "MAX_TOP",
    "OAUTH_JSON_TYPE",
    "TOKEN_LIFETIME",
    "Emulator",
    "GraphApi",
    "GraphHandler",
    "IdentityApi",
    "Stats",
    "TokenHandler",
    "TokenIssuer",
    "encode_json",
]
