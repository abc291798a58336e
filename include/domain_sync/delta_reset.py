"""Forgetting the saved delta links (the full resync DAG's `forget_delta_links` param).

A full resync reads the whole tenant whatever links are saved; forgetting them as well means that,
should this run fail, no later incremental run follows a link that is garbled or from a tenant that
was reset: it reads everything too. The links are removed from the committed state under the state
lock, taken for this run as its extract takes it (state.hold_state), so no other run is at work; the
snapshot stays. A dry run keeps them. The run's commit saves the links it received.
"""

from __future__ import annotations

import logging

from domain_sync.context import StageContext
from domain_sync.state import StateStore, hold_state

log = logging.getLogger(__name__)


def forget_delta_links(ctx: StageContext) -> dict:
    if not ctx.flag("forget_delta_links"):
        return {"forgotten": []}
    if ctx.flag("dry_run"):
        log.info("dry run: the saved delta links are kept")
        return {"forgotten": [], "dry_run": True}
    settings, run = ctx.settings, ctx.run
    hold_state(settings, run)
    forgotten = StateStore(settings.state_dir).forget_delta_links()
    log.warning("run %s: saved delta links forgotten: %s", run.run_id, forgotten)
    return {"forgotten": forgotten}


run = forget_delta_links
