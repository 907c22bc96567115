"""A private OpenLDAP server (Debian ``slapd``) for directory-login tests.

Started on a free loopback port with its own configuration and database in a temp folder,
seeded with people and groups, stopped at the end of the session. Nothing system-wide is
touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
# login -> (name, password, groups)
USERS = {
    "dora": ("Dora Directory", "dora's long secret", ["portal-admins"]),
    "sam": ("Sam Standard", "sam's long secret", ["portal-users"]),
    "avi": ("Avi Auditor", "avi's long secret", ["portal-auditors", "portal-users"]),
    "eve": ("Eve Nogroup", "eve's long secret", []),
}


@dataclass
class Slapd:
    url: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed() -> str:
    out = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: Example\ndc: example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for login, (name, password, _groups) in USERS.items():
        out.append(
            f"dn: uid={login},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {login}\n"
            f"cn: {name}\nsn: {name.split()[-1]}\ndisplayName: {name}\nuserPassword: {password}\n"
        )
    groups: dict[str, list[str]] = {}
    for login, (_n, _p, member_of) in USERS.items():
        for g in member_of:
            groups.setdefault(g, []).append(f"uid={login},{PEOPLE}")
    for g, members in groups.items():
        lines = "".join(f"member: {m}\n" for m in members)
        out.append(f"dn: cn={g},{GROUPS}\nobjectClass: groupOfNames\ncn: {g}\n{lines}")
    return "\n".join(out)


def start_slapd(workdir: Path) -> Slapd:
    """Start slapd in ``workdir`` and seed it; raises RuntimeError when it does not come up."""
    db = workdir / "db"
    db.mkdir(parents=True, exist_ok=True)
    conf = workdir / "slapd.conf"
    conf.write_text(
        "include /etc/ldap/schema/core.schema\n"
        "include /etc/ldap/schema/cosine.schema\n"
        "include /etc/ldap/schema/inetorgperson.schema\n"
        "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        f"pidfile {workdir / 'slapd.pid'}\n"
        "database mdb\nmaxsize 10485760\n"
        f'suffix "{SUFFIX}"\nrootdn "{ROOT_DN}"\nrootpw "{ROOT_PW}"\n'
        f"directory {db}\n"
        "access to attrs=userPassword by anonymous auth by self read by * none\n"
        "access to * by * read\n",
        encoding="utf-8",
    )
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = open(workdir / "slapd.log", "wb")
    proc = subprocess.Popen(
        [SLAPD, "-f", str(conf), "-h", f"{url}/", "-d", "256"], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "slapd.log").read_text(errors="replace"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("slapd did not start")
    seed = workdir / "seed.ldif"
    seed.write_text(_seed(), encoding="utf-8")
    res = subprocess.run(
        ["ldapadd", "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW, "-f", str(seed)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if res.returncode != 0:
        proc.kill()
        raise RuntimeError(f"ldapadd failed: {res.stdout}{res.stderr}")
    return Slapd(url, proc, workdir)
