"""What a person sees when a page cannot be shown: 404, 403 and 500 in the site's layout with a way
back, the JSON API's errors as JSON, an exception logged with the reference its page shows."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

import pytest

from tests.fixtures_refusals import (  # noqa: F401 - fixtures
    SECRET_DETAIL,
    Site,
    fast_password_hashing,
    populated_templates,
    pseudo_catalog,
    site,
    whisper_transcript,
)

# Pages drawn the same whatever the database: SQLite only, to keep the suite quick.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class _Page(HTMLParser):
    """The error section's visible words, its links, and whether the site's layout is around it."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.links: dict[str, str] = {}
        self.heading = ""
        self.nav = False
        self._depth = 0
        self._tags: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "nav" and "main" in (a.get("class") or ""):
            self.nav = True
        if tag == "section" and "error-page" in (a.get("class") or ""):
            self._depth = 1
        elif self._depth and tag not in ("br", "img", "input"):
            self._depth += 1
        self._tags.append(tag)
        if self._depth and tag == "a":
            self._href = a.get("href")

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag not in ("br", "img", "input"):
            self._depth -= 1
        if self._tags:
            self._tags.pop()

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if not (self._depth and text):
            return
        tag = self._tags[-1] if self._tags else ""
        if tag == "h1":
            self.heading = text
        if tag == "a" and self._href:
            self.links[text] = self._href
        # The big status number is decoration (aria-hidden), not words.
        if not text.isdigit():
            self.words.append(text)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


async def test_unknown_page_call_and_client_get_a_404_page_with_a_way_back(site: Site) -> None:
    olga = await site.signed_in("olga")
    for path, said in (
        ("/no/such/page", "There is no such page"),
        ("/calls/999999", "No such call."),
        ("/clients/999999", "No such client."),
    ):
        async with olga.send("GET", path, headers={"Referer": f"{site.url}/calls?page=2"}) as response:
            html = await response.text()
            assert (response.status, response.content_type) == (404, "text/html"), path
            assert response.headers["Content-Security-Policy"]
        page = parse(html)
        assert said in " ".join(page.words), path
        # In the layout (the head's navigation is there) with a way home and back where she came from.
        assert page.nav, path
        assert page.links == {"Home page": "/", "Back": "/calls?page=2"}, path
    # Back never leads to another site.
    async with olga.send("GET", "/nowhere", headers={"Referer": "https://evil.example/phish"}) as response:
        assert parse(await response.text()).links == {"Home page": "/"}


async def test_the_api_answers_errors_in_json(site: Site) -> None:
    olga = await site.signed_in("olga")
    ivan = await site.signed_in("ivan")
    stranger = site.client()
    assert await olga.json("GET", "/api/no/such/thing") == (404, {"error": "not found"})
    assert await olga.json("GET", "/api/calls/999999") == (404, {"error": "no such call"})
    assert await olga.json("DELETE", "/api/me") == (405, {"error": "method not allowed"})
    assert await ivan.json("GET", f"/api/calls/{site.data.petr_call_id}") == (403, {"error": "this call is not yours"})
    assert await ivan.json("GET", "/api/users") == (403, {"error": "your role may not do this"})
    assert await stranger.json("GET", "/api/me") == (401, {"error": "sign in first"})
    status, body = await olga.json("POST", "/api/login", data=b"\xff\xfe not json", csrf=True)
    assert (status, body) == (400, {"error": "the body must be JSON"})


async def test_a_role_or_a_call_not_yours_gets_a_403_page(site: Site) -> None:
    ivan = await site.signed_in("ivan")
    for path, heading, said in (
        ("/kpi", "Access denied", "Your role may not open this page."),
        (f"/calls/{site.data.petr_call_id}", "Not yours", "This call belongs to another manager."),
        (f"/clients/{site.data.petr_client_id}", "Not yours", "This client belongs to another manager."),
    ):
        async with ivan.send("GET", path) as response:
            assert (response.status, response.content_type) == (403, "text/html"), path
            page = parse(await response.text())
        assert (page.heading, said in page.words, page.nav) == (heading, True, True), path
        assert page.links["Home page"] == "/"
    # A form posted without the page's token: the same page, saying what to do.
    async with ivan.send("POST", "/logout", csrf=False, data={"csrf_token": "stale"}) as response:
        assert response.status == 403
        assert "Reload the page and try again." in " ".join(parse(await response.text()).words)


@SQLITE_ONLY
async def test_an_exception_gives_a_500_page_with_a_reference_and_no_traceback(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    olga = await site.signed_in("olga")
    caplog.set_level(logging.ERROR, "pbxbridge.web")
    async with olga.send("GET", "/reports/broken") as response:
        html = await response.text()
        assert (response.status, response.content_type) == (500, "text/html")
    page = parse(html)
    assert page.heading == "Something went wrong" and page.nav and page.links["Home page"] == "/"
    (reference,) = re.findall(r"Reference for the administrator: ([0-9a-f]{8})", html)
    assert SECRET_DETAIL not in html and "Traceback" not in html and "RuntimeError" not in html
    status, body = await olga.json("GET", "/api/reports/broken")
    assert status == 500 and SECRET_DETAIL not in str(body)
    assert body["error"] == f"internal error (reference {body['reference']})"
    # The log has both, each with its reference and the whole traceback, for whoever runs the daemon.
    logged = [r for r in caplog.records if r.exc_info]
    assert [re.search(r"reference (\w+)", r.getMessage()).group(1) for r in logged] == [  # type: ignore[union-attr]
        reference, body["reference"]]
    assert all(SECRET_DETAIL in str(r.exc_info[1]) for r in logged if r.exc_info)
    # The site still works after.
    assert (await olga.json("GET", "/api/me"))[0] == 200


@SQLITE_ONLY
async def test_oversized_or_broken_requests_get_a_clear_answer(site: Site) -> None:
    olga = await site.signed_in("olga")
    # Over the 1 MiB body limit: refused with words, not a traceback; nothing changed.
    async with olga.send("POST", "/login", data={"username": "olga", "password": "x" * (2 * 1024 * 1024)}) as response:
        assert (response.status, response.content_type) == (413, "text/html")
        assert parse(await response.text()).heading == "Too much data"
    status, body = await olga.json("POST", "/api/login", data=b"{" * (2 * 1024 * 1024),
                                   headers={"Content-Type": "application/json"})
    assert (status, body) == (413, {"error": "the request is too large"})
    assert (await olga.json("GET", "/api/me"))[0] == 200


@SQLITE_ONLY
async def test_every_word_of_an_error_goes_through_the_catalog(site: Site, pseudo_catalog: None) -> None:
    olga = await site.signed_in("olga")
    for path, status in (("/no/such/page", 404), ("/calls/999999", 404), ("/reports/broken", 500)):
        async with olga.send("GET", path, headers={"Referer": f"{site.url}/calls"}) as response:
            assert response.status == status
            page = parse(await response.text())
        assert page.words and all(w.startswith("⟦") and w.endswith("⟧") for w in page.words), (path, page.words)
    ivan = await site.signed_in("ivan")
    async with ivan.send("GET", "/kpi") as response:
        page = parse(await response.text())
        assert all(w.startswith("⟦") for w in page.words), page.words
    for client, path in ((olga, "/api/nothing"), (olga, "/api/calls/999999"), (ivan, "/api/users")):
        _, body = await client.json("GET", path)
        assert body["error"].startswith("⟦"), (path, body)


async def test_hostile_requests_get_a_clear_error_and_lose_nothing(site: Site) -> None:
    olga = await site.signed_in("olga")
    stranger = site.client()
    await stranger.prime()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    huge = "9" * 30
    cases = [
        # (who, method, path, request, status the person gets)
        (stranger, "POST", "/login", dict(data=b"username=%ff&password=\xff\xfe&csrf_token=x", headers=form), 400),
        (stranger, "POST", "/login", dict(data=b"\x00\x01", headers={"Content-Type": "multipart/form-data; boundary=x"}),
         400),
        (stranger, "POST", "/api/login", dict(data=b"[" * 100_000 + b"]" * 100_000,
                                              headers={"Content-Type": "application/json"}), 400),
        (stranger, "POST", "/api/login", dict(json={"username": "olga\x00", "password": "x"}), 401),
        (stranger, "GET", "/api/%00", {}, 401),
        (olga, "GET", f"/calls/{huge}", {}, 404),
        (olga, "GET", f"/clients/{huge}", {}, 404),
        (olga, "GET", f"/api/calls/{huge}", {}, 404),
        (olga, "GET", f"/api/clients/{huge}", {}, 404),
        (olga, "GET", f"/api/audit?page={huge}", {}, 200),
        (olga, "GET", "/api/audit?action=%00", {}, 200),
    ]
    for client, method, path, request, status in cases:
        async with client.send(method, path, **request) as response:
            body = await response.text()
        assert (response.status, "Traceback" in body) == (status, False), (method, path, body[:300])
        assert response.content_type == ("application/json" if path.startswith("/api/") else "text/html")
    # Nothing was lost: she is still signed in, and the log has the strange name and path as they came.
    assert (await olga.json("GET", "/api/me"))[0] == 200
    (failed,) = await site.audit("sign_in_failed")
    assert (failed.username, failed.details["reason"]) == ("olga\ufffd", "unknown_user")
    (refused,) = await site.audit("request_refused")
    assert refused.target == "GET /api/\ufffd"
