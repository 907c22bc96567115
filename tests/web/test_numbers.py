"""Number management through the portal: the policy layer's rules and messages, unchanged."""

from __future__ import annotations

import pytest

from siprec_recorder.policy.errors import CsvImportError, PolicyError

from .fixtures import BOB_NUMBER


async def test_numbers_listed_for_admins_and_auditors_only(as_user):
    admin = await as_user("alice")
    numbers = (await admin.get("/api/numbers")).json()
    assert BOB_NUMBER in [n["number"] for n in numbers]
    assert (await (await as_user("audrey")).get("/api/numbers")).status_code == 200
    assert (await (await as_user("bob")).get("/api/numbers")).status_code == 403


async def test_schedule_edit_and_overlap_rejected_word_for_word(as_user, policy):
    admin = await as_user("alice")
    r = await admin.put(
        f"/api/numbers/{BOB_NUMBER}/schedule", json={"slots": ["mon-fri 08:00-18:00"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["slots"] == ["mon-fri 08:00-18:00"]
    bad = ["mon-fri 08:00-18:00", "wed 17:00-19:00"]
    r = await admin.put(f"/api/numbers/{BOB_NUMBER}/schedule", json={"slots": bad})
    assert r.status_code == 422
    with pytest.raises(PolicyError) as info:
        await policy.set_schedule(BOB_NUMBER, actor="test", slots=bad)
    assert r.json()["detail"] == str(info.value)
    assert "overlap" in r.json()["detail"]
    # nothing changed
    assert (await admin.get(f"/api/numbers/{BOB_NUMBER}")).json()["slots"] == [
        "mon-fri 08:00-18:00"
    ]
    auditor = await as_user("audrey")
    r = await auditor.put(
        f"/api/numbers/{BOB_NUMBER}/schedule", json={"slots": ["sat 08:00-09:00"]}
    )
    assert r.status_code == 403


async def test_templates(as_user):
    admin = await as_user("alice")
    r = await admin.put("/api/templates/office", json={"slots": ["mon-fri 08:00-18:00"]})
    assert r.status_code == 200, r.text
    r = await admin.put(f"/api/numbers/{BOB_NUMBER}/schedule", json={"template": "office"})
    assert r.json()["template"] == "office"
    r = await admin.put("/api/templates/short", json={"slots": ["mon 08:00-08:02"]})
    assert r.status_code == 422
    assert "5 minutes" in r.json()["detail"] or "minutes" in r.json()["detail"]
    names = [t["name"] for t in (await admin.get("/api/templates")).json()]
    assert names == ["office"]


async def test_csv_upload_reports_every_bad_row(as_user, world):
    from siprec_recorder.policy.importer import import_numbers

    admin = await as_user("alice")
    csv = (
        b"number,user,template,managed,status,mode,beep,notify,self_service\n"
        b"+32470000010,dave,,no,manual,professional,no,no,no\n"
        b"not-a-number,erin,,no,manual,professional,no,no,no\n"
        b"+32470000011,frank,nosuchtemplate,yes,auto,professional,no,no,no\n"
    )
    r = await admin.post("/api/numbers/import", files={"file": ("n.csv", csv, "text/csv")})
    assert r.status_code == 422
    body = r.json()
    with pytest.raises(CsvImportError) as info:
        await import_numbers(world.db, csv, actor="test")
    assert body["detail"] == info.value.message
    assert [p["row"] for p in body["problems"]] == [p.row for p in info.value.problems]
    assert {p["row"] for p in body["problems"]} == {3, 4}
    good = (
        b"number,user,template,managed,status,mode,beep,notify,self_service\n"
        b"+32470000010,dave,,no,manual,professional,no,no,no\n"
    )
    r = await admin.post("/api/numbers/import", files={"file": ("n.csv", good, "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1


async def test_xlsx_upload_with_row_errors(as_user):
    import io

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(
        [
            "number",
            "user",
            "template",
            "managed",
            "status",
            "mode",
            "beep",
            "notify",
            "self_service",
        ]
    )
    ws.append(["+32470000030", "jill", None, "no", "manual", "professional", "no", "no", "no"])
    ws.append(["+32470000031", "kim", None, "no", "auto", "professional", "no", "no", "no"])
    buf = io.BytesIO()
    wb.save(buf)
    admin = await as_user("alice")
    r = await admin.post(
        "/api/numbers/import",
        files={
            "file": (
                "n.xlsx",
                buf.getvalue(),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        },
    )
    assert r.status_code == 422, r.text
    assert [p["row"] for p in r.json()["problems"]] == [3]
    numbers = [n["number"] for n in (await admin.get("/api/numbers")).json()]
    assert "+32470000030" not in numbers  # all or nothing
