"""Directory login: a simple bind to LDAP / Active Directory and group-to-role mapping.

The user's DN is ``user_dn`` with ``{login}`` filled in (escaped as an RDN value); an AD
``userPrincipalName`` template such as ``{login}@example.com`` works the same way. A
successful bind proves the password; the role is the first of admin, auditor, standard
whose configured groups contain the user, found by a search under ``group_base`` for
groups naming the user's DN as ``member`` / ``uniqueMember`` (OpenLDAP ``groupOfNames``,
AD groups), and from the user's own ``memberOf`` where the directory keeps it. A user in
none of them may not log in. An empty password is refused before any bind: LDAP treats it as an
anonymous bind that "succeeds" (RFC 4513 section 5.1.2).

ldap3 is synchronous; the portal calls :func:`directory_login` in a thread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

__all__ = ["DirectoryUnavailable", "DirectoryUser", "LdapSettings", "directory_login"]

log = logging.getLogger(__name__)
_ROLE_ORDER = ("admin", "auditor", "standard")


@dataclass(frozen=True, slots=True)
class LdapSettings:
    """The ``[web] ldap_*`` keys."""

    url: str
    user_dn: str
    group_base: str = ""
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """Who the directory says the user is."""

    login: str
    name: str
    role: str
    dn: str


class DirectoryUnavailable(Exception):
    """The directory could not be reached (the caller falls back to local accounts)."""


def _norm(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))


def directory_login(settings: LdapSettings, login: str, password: str) -> DirectoryUser | None:
    """The directory user behind ``login`` and ``password``, or None when the bind fails
    or the user is in no mapped group."""
    import ldap3
    from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn

    if not login or not password or len(login) > 255:
        return None
    if "=" in settings.user_dn.split("{login}")[0]:
        dn = settings.user_dn.replace("{login}", escape_rdn(login))
    else:  # userPrincipalName / DOMAIN\\user forms take the login as typed
        dn = settings.user_dn.replace("{login}", login)
    timeout = max(1, math.ceil(settings.timeout))  # ldap3 packs it as a C int
    server = ldap3.Server(settings.url, connect_timeout=timeout, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server, user=dn, password=password, receive_timeout=timeout, read_only=True
    )
    try:
        if not conn.bind():
            return None
        groups: set[str] = set()
        name = login
        if "=" in dn and conn.search(
            dn,
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["cn", "displayName", "memberOf"],
        ):
            entry = conn.entries[0]
            attrs = entry.entry_attributes_as_dict
            name = str((attrs.get("displayName") or attrs.get("cn") or [login])[0])
            groups.update(_norm(g) for g in attrs.get("memberOf", []))
        if settings.group_base:
            who = escape_filter_chars(dn)
            conn.search(
                settings.group_base,
                f"(|(member={who})(uniqueMember={who}))",
                attributes=["cn"],
            )
            groups.update(_norm(e.entry_dn) for e in conn.entries)
    except LDAPSocketOpenError as exc:
        raise DirectoryUnavailable(str(exc)) from None
    except LDAPException as exc:
        log.warning("directory login of %r failed: %s", login, exc)
        return None
    finally:
        conn.unbind()
    for role in _ROLE_ORDER:
        if any(_norm(g) in groups for g in settings.groups.get(role, ())):
            return DirectoryUser(login=login, name=name, role=role, dn=dn)
    return None
