from .conftest import login


async def test_admin_searches(client_factory, world):
    c = client_factory()
    await login(c, "alice")
    r = await c.get("/api/recordings")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 3
