"""The run summary an operator reads (domain_sync.summary.format_summary)."""

from __future__ import annotations

from domain_sync.summary import format_summary


def test_the_summary_names_the_drift_put_back_and_the_members_that_are_not_synced():
    text = format_summary({
        "run_id": "r1",
        "transform": {"member_types_not_synced": {"device": 2, "orgContact": 1}},
        "plan": {"changes": 4, "drift_corrected": {"changed_in_domain": 3, "memberships_changed": 1}},
    })
    assert "group members that are neither users nor groups (not members in the domain): 2 device, 1 orgContact" \
        in text
    assert "drift put back (the domain differed for objects the tenant did not change): 3 changed in domain, " \
           "1 memberships changed" in text


def test_a_run_without_drift_or_other_members_says_nothing_of_them():
    text = format_summary({"run_id": "r1", "transform": {"member_types_not_synced": {}},
                           "plan": {"changes": 0, "drift_corrected": None}})
    assert "drift" not in text and "neither users nor groups" not in text
