"""Account state the plan writes on every run: enabled, password never expires, must change at next
logon (pwdLastSet = 0 when the tenant asks for it), and the userAccountControl bits an admin set."""

from datetime import UTC, datetime

from domain_sync.plan.changeset import (
    UF_ACCOUNTDISABLE,
    UF_DONT_EXPIRE_PASSWD,
    UF_NORMAL_ACCOUNT,
    filetime,
    must_change_now,
    plan_changes,
    user_account_control,
)
from tests.unit.test_changeset import ANCHOR, U1, inputs, observed, observed_user, ops, user

UF_SMARTCARD_REQUIRED = 0x40000
UF_NOT_DELEGATED = 0x100000
TENANT_SET = "2027-03-01T10:00:00Z"
BEFORE = str(filetime(datetime(2027, 2, 1, tzinfo=UTC)))  # the domain's password was set before the tenant asked
AFTER = str(filetime(datetime(2027, 3, 2, tzinfo=UTC)))  # the person changed it after


def tenant_user(enabled=True, never_expires=False, must_change=False, changed_at=TENANT_SET):
    r = user(U1, "ana", enabled=enabled)
    r.update(password_never_expires=never_expires, must_change_password=must_change, password_changed_at=changed_at)
    return r


def domain_user(uac=UF_NORMAL_ACCOUNT, pwd_last_set=BEFORE):
    obj = observed_user(U1, "ana")
    obj.attributes["useraccountcontrol"] = [str(uac)]
    obj.attributes["pwdlastset"] = [pwd_last_set]
    return obj


def plan(record, obj=None, **kwargs):
    cs, _ = plan_changes(inputs([record]), observed([obj] if obj else []), ANCHOR, **kwargs)
    return cs


def test_account_enabled_false_sets_account_disabled_and_keeps_an_admins_bits():
    admin_bits = UF_NORMAL_ACCOUNT | UF_SMARTCARD_REQUIRED | UF_NOT_DELEGATED
    cs = plan(tenant_user(enabled=False), domain_user(uac=admin_bits))
    assert ops(cs) == [("disable", U1)]
    assert cs.changes[0].values["userAccountControl"] == [str(admin_bits | UF_ACCOUNTDISABLE)]


def test_enabled_again_clears_only_account_disabled():
    admin_bits = UF_NORMAL_ACCOUNT | UF_SMARTCARD_REQUIRED
    cs = plan(tenant_user(enabled=True), domain_user(uac=admin_bits | UF_ACCOUNTDISABLE))
    assert ops(cs) == [("modify", U1)] and cs.changes[0].values["userAccountControl"] == [str(admin_bits)]


def test_disable_password_expiration_sets_dont_expire_password_and_keeps_an_admins_bits():
    cs = plan(tenant_user(never_expires=True), domain_user(uac=UF_NORMAL_ACCOUNT | UF_NOT_DELEGATED))
    assert cs.changes[0].values["userAccountControl"] == [str(UF_NORMAL_ACCOUNT | UF_NOT_DELEGATED
                                                              | UF_DONT_EXPIRE_PASSWD)]
    cs = plan(tenant_user(never_expires=False), domain_user(uac=UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD))
    assert cs.changes[0].values["userAccountControl"] == [str(UF_NORMAL_ACCOUNT)]


def test_bits_the_sync_does_not_own_are_never_changed():
    for bits in (UF_SMARTCARD_REQUIRED, UF_NOT_DELEGATED, UF_SMARTCARD_REQUIRED | UF_NOT_DELEGATED):
        observed_uac = UF_NORMAL_ACCOUNT | bits
        assert user_account_control(True, False, observed_uac) & ~(UF_ACCOUNTDISABLE | UF_DONT_EXPIRE_PASSWD) == \
            observed_uac
    assert plan(tenant_user(), domain_user(uac=UF_NORMAL_ACCOUNT | UF_SMARTCARD_REQUIRED)).changes == []


def test_the_tenant_asking_for_a_change_after_the_domains_password_was_set_sets_pwd_last_set_0():
    cs = plan(tenant_user(must_change=True), domain_user(pwd_last_set=BEFORE))
    assert ops(cs) == [("modify", U1)] and cs.changes[0].values == {"pwdLastSet": ["0"]}


def test_a_domain_password_set_within_the_tenants_second_counts_as_older():
    # Graph's lastPasswordChangeDateTime has whole seconds; the domain's pwdLastSet has 100 ns ticks.
    same_second = str(filetime(datetime(2027, 3, 1, 10, 0, 0, 700_000, tzinfo=UTC)))
    assert must_change_now(True, TENANT_SET, same_second)
    next_second = str(filetime(datetime(2027, 3, 1, 10, 0, 1, tzinfo=UTC)))
    assert not must_change_now(True, TENANT_SET, next_second)


def test_once_the_person_changed_the_password_pwd_last_set_is_never_touched_again():
    assert plan(tenant_user(must_change=True), domain_user(pwd_last_set=AFTER)).changes == []


def test_a_domain_already_at_must_change_needs_nothing():
    assert plan(tenant_user(must_change=True), domain_user(pwd_last_set="0")).changes == []


def test_without_the_tenants_request_or_its_time_pwd_last_set_is_left_alone():
    assert plan(tenant_user(must_change=False), domain_user(pwd_last_set=BEFORE)).changes == []
    assert plan(tenant_user(must_change=True, changed_at=None), domain_user(pwd_last_set=BEFORE)).changes == []
    assert not must_change_now(True, "not a time", BEFORE)
    assert not must_change_now(float("nan"), TENANT_SET, BEFORE)


def test_a_new_user_with_an_initial_password_must_change_it_at_first_logon():
    (create,) = plan(tenant_user()).changes
    assert create.values["pwdLastSet"] == ["0"] and create.reason == "initial password"
    assert int(create.values["userAccountControl"][0]) & UF_ACCOUNTDISABLE == 0


def test_without_an_initial_password_a_new_user_is_created_disabled():
    (create,) = plan(tenant_user(), set_initial_password=False).changes
    assert int(create.values["userAccountControl"][0]) & UF_ACCOUNTDISABLE
    assert "pwdLastSet" not in create.values and create.reason == ""


def test_password_profile_is_staged_as_its_flag_only():
    from domain_sync.extract.staging import staged_value

    profile = {"password": None, "forceChangePasswordNextSignIn": True, "forceChangePasswordNextSignInWithMfa": False}
    assert staged_value("passwordProfile", profile) is True
    assert staged_value("passwordProfile", {**profile, "forceChangePasswordNextSignIn": False}) is False
    assert staged_value("passwordProfile", {"forceChangePasswordNextSignInWithMfa": True}) is True
    assert staged_value("passwordProfile", None) is None


def test_records_carry_the_tenants_must_change_request_and_its_time():
    import pandas as pd

    from domain_sync.config import DEFAULT_MAPPING_FILE
    from domain_sync.mapping import load_mapping
    from domain_sync.transform.directory import user_records

    mapping = load_mapping(DEFAULT_MAPPING_FILE)
    assert {"passwordProfile", "lastPasswordChangeDateTime"} <= set(mapping.graph_select("user"))
    users = pd.DataFrame([
        {"id": U1, "displayName": "Ana", "mailNickname": "ana", "accountEnabled": True, "passwordProfile": True,
         "lastPasswordChangeDateTime": TENANT_SET},
        {"id": "22222222-2222-2222-2222-222222222222", "displayName": "Bo", "mailNickname": "bo",
         "accountEnabled": True, "passwordProfile": None, "lastPasswordChangeDateTime": None},
    ])
    records = user_records(users, mapping)
    assert records["must_change_password"].tolist() == [True, False]
    assert [v if isinstance(v, str) else None for v in records["password_changed_at"]] == [TENANT_SET, None]


def test_without_an_initial_password_an_account_without_one_stays_disabled_until_an_admin_sets_one():
    disabled = UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE
    assert plan(tenant_user(), domain_user(uac=disabled, pwd_last_set="0"), set_initial_password=False).changes == []
    cs = plan(tenant_user(), domain_user(uac=disabled, pwd_last_set=BEFORE), set_initial_password=False)
    assert cs.changes[0].values["userAccountControl"] == [str(UF_NORMAL_ACCOUNT)]
    # an account an admin enabled is left enabled; one the tenant disables is disabled
    assert plan(tenant_user(), domain_user(pwd_last_set="0"), set_initial_password=False).changes == []
    assert ops(plan(tenant_user(enabled=False), domain_user(pwd_last_set="0"), set_initial_password=False)) == \
        [("disable", U1)]
