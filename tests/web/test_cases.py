"""Cases, labels and access requests: rights exactly as granted, and no more."""

from __future__ import annotations

from datetime import timedelta

from .fixtures import T0  # noqa: F401


async def _case(admin, **access):  # type: ignore[no-untyped-def]
    r = await admin.post(
        "/api/cases",
        json={
            "title": "Libor inquiry",
            "new_label": {"title": "LIBOR", "colour": "#C03030"},
            **access,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_case_with_new_coloured_label(as_user, world):
    admin = await as_user("alice")
    case = await _case(admin)
    assert case["label"] == {"id": case["label"]["id"], "title": "LIBOR", "colour": "#c03030"}
    assert case["owner"] == "alice"
    assert case["access"] == {"list": "admins", "play": "admins", "label": "owner"}
    # same label title again is a conflict; an existing label can be reused once
    r = await admin.post(
        "/api/cases", json={"title": "x", "new_label": {"title": "LIBOR", "colour": "#000000"}}
    )
    assert r.status_code == 409
    lab = (await admin.post("/api/labels", json={"title": "Spare", "colour": "#00aa00"})).json()
    r = await admin.post("/api/cases", json={"title": "Second", "label_id": lab["id"]})
    assert r.status_code == 201
    r = await admin.post("/api/cases", json={"title": "Third", "label_id": lab["id"]})
    assert r.status_code == 409
    bob = await as_user("bob")
    assert (
        await bob.post(
            "/api/cases", json={"title": "mine", "new_label": {"title": "B", "colour": "#111111"}}
        )
    ).status_code == 403


async def test_labels_join_and_leave_case_and_label_right(as_user, world):
    alice = await as_user("alice")
    case = await _case(alice)
    rec = world.recordings["carol1"]
    r = await alice.post(f"/api/recordings/{rec}/labels", json={"label_id": case["label"]["id"]})
    assert r.status_code == 200
    assert [lb["title"] for lb in r.json()["labels"]] == ["LIBOR"]
    found = (await alice.get("/api/recordings", params={"case_id": case["id"]})).json()
    assert [i["id"] for i in found["items"]] == [rec]
    assert (await alice.get("/api/recordings", params={"label_id": case["label"]["id"]})).json()[
        "total"
    ] == 1
    # label access "owner": another admin may not (un)label
    adam = await as_user("adam")
    r = await adam.delete(f"/api/recordings/{rec}/labels/{case['label']['id']}")
    assert r.status_code == 403
    r = await alice.delete(f"/api/recordings/{rec}/labels/{case['label']['id']}")
    assert r.status_code == 200
    assert (await alice.get("/api/recordings", params={"case_id": case["id"]})).json()["total"] == 0


async def test_access_request_lifecycle(as_user, world, clock):
    alice = await as_user("alice")
    case = await _case(alice)
    carol_rec = world.recordings["carol1"]
    await alice.post(f"/api/recordings/{carol_rec}/labels", json={"label_id": case["label"]["id"]})
    bob = await as_user("bob")
    assert (await bob.get(f"/api/recordings/{carol_rec}")).status_code == 403

    expires = (clock.now + timedelta(days=7)).isoformat()
    r = await bob.post(
        "/api/requests",
        json={
            "case_id": case["id"],
            "reason": "audit of desk",
            "rights": ["list", "play"],
            "expires_at": expires,
        },
    )
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "pending"
    # pending grants nothing
    assert (await bob.get(f"/api/recordings/{carol_rec}")).status_code == 403
    # nobody approves their own; a standard user approves nothing
    assert (await bob.post(f"/api/requests/{req['id']}/approve", json={})).status_code == 403
    pending = (await alice.get("/api/requests", params={"which": "pending"})).json()
    assert [p["id"] for p in pending] == [req["id"]]
    assert pending[0]["reason"] == "audit of desk" and pending[0]["requester"] == "bob"
    r = await alice.post(f"/api/requests/{req['id']}/approve", json={"note": "ok for a week"})
    assert r.status_code == 200 and r.json()["status"] == "approved"

    # bob now lists and plays the case's conversations, and still cannot download
    found = (await bob.get("/api/recordings", params={"case_id": case["id"]})).json()
    assert [i["id"] for i in found["items"]] == [carol_rec]
    assert (await bob.get("/api/recordings")).json()["total"] == 3
    assert (await bob.get(f"/api/recordings/{carol_rec}/audio")).status_code == 206
    assert (await bob.get(f"/api/recordings/{carol_rec}/download")).status_code == 403
    # no label right was granted
    r = await bob.delete(f"/api/recordings/{carol_rec}/labels/{case['label']['id']}")
    assert r.status_code == 403

    # revoke: 403 right after
    r = await alice.post(f"/api/requests/{req['id']}/revoke", json={"note": "done"})
    assert r.json()["status"] == "revoked"
    assert (await bob.get(f"/api/recordings/{carol_rec}/audio")).status_code == 403
    assert (await alice.post(f"/api/requests/{req['id']}/revoke", json={})).status_code == 409

    # a second request, approved, then expired
    r = await bob.post(
        "/api/requests",
        json={
            "case_id": case["id"],
            "reason": "again",
            "rights": ["play", "list"],
            "expires_at": expires,
        },
    )
    req2 = r.json()
    await alice.post(f"/api/requests/{req2['id']}/approve", json={"note": ""})
    assert (await bob.get(f"/api/recordings/{carol_rec}/audio")).status_code == 206
    clock.now += timedelta(days=8)
    bob = await as_user("bob")  # the old session has timed out too
    alice = await as_user("alice")
    assert (await bob.get(f"/api/recordings/{carol_rec}/audio")).status_code == 403
    mine = (await bob.get("/api/requests")).json()
    assert {m["id"]: m["status"] for m in mine} == {req["id"]: "revoked", req2["id"]: "expired"}
    everything = (await alice.get("/api/requests", params={"which": "all"})).json()
    history = next(x for x in everything if x["id"] == req["id"])["history"]
    assert [h["action"] for h in history] == ["requested", "approved", "revoked"]
    assert history[1]["note"] == "ok for a week"
    assert (await bob.get("/api/requests", params={"which": "all"})).status_code == 403


async def test_reject_and_list_only_right(as_user, world, clock):
    alice = await as_user("alice")
    case = await _case(alice)
    rec = world.recordings["carol1"]
    await alice.post(f"/api/recordings/{rec}/labels", json={"label_id": case["label"]["id"]})
    bob = await as_user("bob")
    exp = (clock.now + timedelta(days=3)).isoformat()
    req = (
        await bob.post(
            "/api/requests",
            json={"case_id": case["id"], "reason": "r", "rights": ["list"], "expires_at": exp},
        )
    ).json()
    r = await alice.post(f"/api/requests/{req['id']}/reject", json={"note": "no reason given"})
    assert r.json()["status"] == "rejected"
    assert (await alice.post(f"/api/requests/{req['id']}/approve", json={})).status_code == 409
    req = (
        await bob.post(
            "/api/requests",
            json={"case_id": case["id"], "reason": "r2", "rights": ["list"], "expires_at": exp},
        )
    ).json()
    await alice.post(f"/api/requests/{req['id']}/approve", json={})
    assert (await bob.get(f"/api/recordings/{rec}")).status_code == 200
    detail = (await bob.get(f"/api/recordings/{rec}")).json()
    assert detail["can_play"] is False
    assert (await bob.get(f"/api/recordings/{rec}/audio")).status_code == 403


async def test_label_right_granted_lets_user_remove(as_user, world, clock):
    alice = await as_user("alice")
    case = await _case(alice)
    rec = world.recordings["carol1"]
    await alice.post(f"/api/recordings/{rec}/labels", json={"label_id": case["label"]["id"]})
    bob = await as_user("bob")
    exp = (clock.now + timedelta(days=3)).isoformat()
    req = (
        await bob.post(
            "/api/requests",
            json={
                "case_id": case["id"],
                "reason": "clean up",
                "rights": ["list", "label"],
                "expires_at": exp,
            },
        )
    ).json()
    adam = await as_user("adam")
    await adam.post(f"/api/requests/{req['id']}/approve", json={})
    r = await bob.delete(f"/api/recordings/{rec}/labels/{case['label']['id']}")
    assert r.status_code == 200
    assert (await bob.get(f"/api/recordings/{rec}")).status_code == 403


async def test_admin_cannot_approve_own_request(as_user, clock):
    alice = await as_user("alice")
    case = await _case(alice)
    adam = await as_user("adam")
    exp = (clock.now + timedelta(days=3)).isoformat()
    req = (
        await adam.post(
            "/api/requests",
            json={"case_id": case["id"], "reason": "label", "rights": ["label"], "expires_at": exp},
        )
    ).json()
    r = await adam.post(f"/api/requests/{req['id']}/approve", json={})
    assert r.status_code == 403
    assert r.json()["detail"] == "nobody decides on their own request"
    assert (await alice.post(f"/api/requests/{req['id']}/approve", json={})).status_code == 200


async def test_request_validation(as_user, clock):
    alice = await as_user("alice")
    case = await _case(alice)
    bob = await as_user("bob")
    past = (clock.now - timedelta(days=1)).isoformat()
    r = await bob.post(
        "/api/requests",
        json={"case_id": case["id"], "reason": "x", "rights": ["list"], "expires_at": past},
    )
    assert r.status_code == 400
    assert r.json()["detail"] == "the expiry date must be in the future"
    r = await bob.post(
        "/api/requests",
        json={
            "case_id": 999,
            "reason": "x",
            "rights": ["list"],
            "expires_at": clock.now.isoformat(),
        },
    )
    assert r.status_code in (400, 404)


async def test_case_access_everyone(as_user, world):
    alice = await as_user("alice")
    case = await _case(alice, list_access="everyone")
    rec = world.recordings["carol1"]
    await alice.post(f"/api/recordings/{rec}/labels", json={"label_id": case["label"]["id"]})
    bob = await as_user("bob")
    assert (await bob.get(f"/api/recordings/{rec}")).status_code == 200
    assert (await bob.get(f"/api/recordings/{rec}/audio")).status_code == 403
    r = await alice.patch(f"/api/cases/{case['id']}/access", json={"list_access": "admins"})
    assert r.json()["access"]["list"] == "admins"
    assert (await bob.get(f"/api/recordings/{rec}")).status_code == 403


async def test_case_details_only_for_those_with_rights(as_user, world):
    admin = await as_user("alice")
    r = await admin.post(
        "/api/cases",
        json={
            "title": "Insider dealing, desk 3",
            "description": "suspected front running by J. Doe",
            "new_label": {"title": "DESK3-IDX", "colour": "#aa2200"},
        },
    )
    case = r.json()
    bob = await as_user("bob")
    listed = {c["id"]: c for c in (await bob.get("/api/cases")).json()}[case["id"]]
    one = (await bob.get(f"/api/cases/{case['id']}")).json()
    page = (await bob.get("/cases")).text + (await bob.get(f"/cases/{case['id']}")).text
    for doc in (listed, one):
        assert doc["title"] == f"Case {case['id']}" and doc["restricted"] is True
        assert doc["description"] == "" and doc["owner"] is None
    for secret in ("Insider", "front running", "DESK3-IDX"):
        assert secret not in str(listed) + str(one) + page
    # an approved request (list) lets bob read it
    req = (
        await bob.post(
            "/api/requests",
            json={
                "case_id": case["id"],
                "reason": "review",
                "rights": ["list"],
                "expires_at": "2026-12-30T00:00:00Z",
            },
        )
    ).json()
    assert req["case_title"] == f"Case {case['id']}"
    await admin.post(f"/api/requests/{req['id']}/approve", json={})
    one = (await bob.get(f"/api/cases/{case['id']}")).json()
    assert one["title"] == "Insider dealing, desk 3" and one["owner"] == "alice"
    # auditors read every case
    audrey = await as_user("audrey")
    assert (await audrey.get(f"/api/cases/{case['id']}")).json()["description"]
