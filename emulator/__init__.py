"""A Microsoft Graph-compatible tenant emulator: users, groups, memberships and delta queries over HTTP,
an OAuth2 client-credentials token endpoint over HTTPS, an admin API to script changes and faults,
and a generator of realistic tenant files. See README.md."""

__all__ = ["__version__"]
__version__ = "1.0.0"
