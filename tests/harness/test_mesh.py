"""The mesh's external payment API (`kit.harness.mesh.PaymentApi`): each answer the checks set,
the count of charges, and a connection error for any other request. In a child process, with
solution/ on sys.path (the test process never imports `services`)."""
from __future__ import annotations

import textwrap

PROBE = textwrap.dedent("""
    import asyncio, json, sys, time
    sys.path.insert(0, sys.argv[1])
    import httpx
    from kit.harness.mesh import Mesh

    async def charge(mesh, url=None, method="POST"):
        async with httpx.AsyncClient(transport=mesh.provider) as client:
            try:
                response = await client.request(method, url or f"{mesh.provider_url}/v1/charges?x=1", json={})
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return [response.status_code, response.json()]

    async def main():
        mesh, seen = Mesh(), {}
        seen["default"] = await charge(mesh)
        mesh.provider_declines("expired_card")
        seen["declines"] = await charge(mesh)
        mesh.provider_fails(500)
        seen["fails"] = [await charge(mesh), await charge(mesh)]
        mesh.provider_times_out()
        seen["times_out"] = [await charge(mesh), await charge(mesh)]
        mesh.provider_slow(0.05, "ch_slow")
        start = time.monotonic()
        seen["slow"] = await charge(mesh)
        seen["slow_s"] = time.monotonic() - start
        mesh.provider_succeeds("ch_again")
        seen["succeeds"] = await charge(mesh)
        seen["charges"] = mesh.charges
        seen["other_path"] = await charge(mesh, f"{mesh.provider_url}/v1/refunds")
        seen["other_method"] = await charge(mesh, method="GET")
        seen["other_host"] = await charge(mesh, "http://elsewhere.example/v1/charges")
        seen["charges_after"] = mesh.charges
        print(json.dumps(seen))

    asyncio.run(main())
""")


def test_the_payment_api_answers_what_the_check_set_and_counts_the_charges(run_with_solution):
    seen = run_with_solution(PROBE)
    assert seen["default"] == [200, {"id": "ch_workshop_0001", "status": "succeeded"}]
    assert seen["declines"] == [402, {"error": {"code": "expired_card", "message": "Your card was declined."}}]
    assert seen["fails"] == [[500, {"error": {"code": "unavailable"}}]] * 2
    assert seen["times_out"] == ["ConnectTimeout", "ConnectTimeout"]
    assert seen["slow"] == [200, {"id": "ch_slow", "status": "succeeded"}] and seen["slow_s"] >= 0.05
    assert seen["succeeds"] == [200, {"id": "ch_again", "status": "succeeded"}]
    assert seen["charges"] == 8
    assert seen["other_path"] == seen["other_method"] == seen["other_host"] == "ConnectError"
    assert seen["charges_after"] == 8
