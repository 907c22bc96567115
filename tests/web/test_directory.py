"""Directory login against a real OpenLDAP server (slapd): bind, groups to roles."""

from __future__ import annotations

import dataclasses

import httpx

from siprec_recorder.config import build_config
from siprec_recorder.services.directory import LdapSettings, directory_login
from siprec_recorder.services.settings import settings_from_config
from siprec_recorder.web.app import create_app

from .fixtures import PASSWORD
from .slapd import GROUPS, PEOPLE, USERS


def ldap_settings(url: str) -> LdapSettings:
    return LdapSettings(
        url=url,
        user_dn=f"uid={{login}},{PEOPLE}",
        group_base=GROUPS,
        groups={
            "admin": (f"cn=portal-admins,{GROUPS}",),
            "auditor": (f"cn=portal-auditors,{GROUPS}",),
            "standard": (f"cn=portal-users,{GROUPS}",),
        },
    )


def test_bind_and_group_mapping(slapd) -> None:  # type: ignore[no-untyped-def]
    s = ldap_settings(slapd.url)
    dora = directory_login(s, "dora", USERS["dora"][1])
    assert dora is not None and dora.role == "admin" and dora.name == "Dora Directory"
    sam = directory_login(s, "sam", USERS["sam"][1])
    assert sam is not None and sam.role == "standard"
    avi = directory_login(s, "avi", USERS["avi"][1])
    assert avi is not None and avi.role == "auditor"  # the first role that matches
    assert directory_login(s, "eve", USERS["eve"][1]) is None  # in no mapped group
    assert directory_login(s, "dora", "wrong") is None
    assert directory_login(s, "dora", "") is None  # an anonymous bind is no login
    assert directory_login(s, "nobody", "whatever") is None
    assert directory_login(s, "dora)(uid=*", USERS["dora"][1]) is None


def test_config_section_builds_the_directory_settings(slapd) -> None:  # type: ignore[no-untyped-def]
    cfg = build_config(
        {
            "web": {
                "ldap_url": slapd.url,
                "ldap_user_dn": f"uid={{login}},{PEOPLE}",
                "ldap_group_base": GROUPS,
                "ldap_admin_groups": [f"cn=portal-admins,{GROUPS}"],
                "ldap_standard_groups": [f"cn=portal-users,{GROUPS}"],
            }
        }
    )
    ws = settings_from_config(cfg)
    assert ws.ldap.url == slapd.url and ws.ldap.groups["admin"] == (f"cn=portal-admins,{GROUPS}",)


async def test_portal_logs_directory_users_in_and_keeps_local_accounts(  # type: ignore[no-untyped-def]
    slapd, world, settings, policy
):
    app = create_app(
        world.db, world.layout, dataclasses.replace(settings, ldap=ldap_settings(slapd.url)), policy
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as c:
        r = await c.post("/api/auth/login", json={"login": "dora", "password": USERS["dora"][1]})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        me = (await c.get("/api/auth/me")).json()
        assert me["role"] == "admin" and me["name"] == "Dora Directory"
        assert (await c.get("/api/recordings")).json()["total"] == 3
        # no local password was made for her: the directory stays the only way in
        r = await c.post("/api/auth/login", json={"login": "eve", "password": USERS["eve"][1]})
        assert r.status_code == 401
        # break-glass: a local account works with the directory configured
        r = await c.post("/api/auth/login", json={"login": "alice", "password": PASSWORD})
        assert r.status_code == 200
