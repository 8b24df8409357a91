"""The rating service over HTTP on 127.0.0.1: a rater reaches only their own steps, bad input is
refused with the right status, the admin view needs its key, requests are limited per link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from leafiqa.labelling.service import create_rating_app  # noqa: E402
from leafiqa.labelling.study import Study  # noqa: E402
from leafiqa.testing.mock_teacher import ServerThread  # noqa: E402
from tests.labelling.conftest import make_study  # noqa: E402


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Study, list[str], str]]:
    study = make_study(tmp_path, images=6, gold={"gold.jpg": 5.0})
    key = study.set_admin_key()
    tokens = [token for _, token in study.add_raters(2)]
    with ServerThread(create_rating_app(study.folder, rate=50, burst=30)) as server:
        yield server.url, study, tokens, key


def test_a_rater_rates_their_steps_in_order(served) -> None:  # noqa: ANN001
    url, study, (token, other), _ = served
    state = httpx.get(f"{url}/api/r/{token}").json()
    assert state["scale"] == "acr" and state["done"] == 0 and state["total"] == 6 + 1 + 2
    assert state["words"] == ["Bad", "Poor", "Fair", "Good", "Excellent"]
    image = httpx.get(f"{url}/api/r/{token}/image/0")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert httpx.get(f"{url}/api/r/{token}/image/1").status_code == 404  # not yet
    reply = httpx.post(f"{url}/api/r/{token}/rating", json={"step": 0, "value": 4})
    assert reply.status_code == 200 and reply.json()["done"] == 1
    assert httpx.get(f"{url}/api/r/{token}/image/0").status_code == 404  # done, gone
    assert httpx.post(f"{url}/api/r/{token}/rating",
                      json={"step": 0, "value": 4}).json()["done"] == 1  # a retry
    assert httpx.post(f"{url}/api/r/{token}/rating",
                      json={"step": 0, "value": 2}).status_code == 409
    assert httpx.get(f"{url}/api/r/{other}").json()["done"] == 0  # the other rater's own
    assert [(r.position, r.value) for r in study.ratings()] == [(0, 4.0)]
    page = httpx.get(f"{url}/r/{token}")
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "img" not in page.text.split("<script>")[0].split("<body>")[1].replace(
        'id="photo"', "").replace("<img", "")  # the page names no image


@pytest.mark.parametrize("body", [{"step": 0, "value": 6}, {"step": 0, "value": 0},
                                  {"step": 0, "value": 2.5}, {"step": 0, "value": "good"},
                                  {"step": -1, "value": 3}, {"value": 3},
                                  # strict types: a string or a boolean is not a number
                                  {"step": 0, "value": "5"}, {"step": 0, "value": True},
                                  {"step": "0", "value": 4}, {"step": True, "value": 4},
                                  {"step": 0.0, "value": 4}, {"step": 0, "value": 4, "x": 1}])
def test_a_rating_off_the_scale_is_422_and_stores_nothing(served, body: dict) -> None:  # noqa: ANN001
    url, study, (token, _), _ = served
    reply = httpx.post(f"{url}/api/r/{token}/rating", json=body)
    assert reply.status_code == 422
    assert study.ratings() == []


def test_unknown_and_revoked_links_are_404(served) -> None:  # noqa: ANN001
    url, study, (token, other), _ = served
    for path in ("/r/nope", "/api/r/nope", "/api/r/nope/image/0", f"/r/{token[:-1]}"):
        assert httpx.get(url + path).status_code == 404, path
    assert httpx.post(f"{url}/api/r/nope/rating", json={"step": 0, "value": 3}
                      ).status_code == 404
    assert "This rating link does not work" in httpx.get(f"{url}/r/nope").text
    study.revoke("rater1")
    assert httpx.get(f"{url}/api/r/{token}").status_code == 404
    assert httpx.get(f"{url}/api/r/{other}").status_code == 200
    # no path from the request reaches the file system
    for path in ("/api/r/../../etc/passwd", f"/api/r/{other}/image/..%2F..%2Fetc%2Fpasswd",
                 f"/api/r/{other}/image/-1"):
        assert httpx.get(url + path).status_code in (404, 422), path


def test_the_admin_view_needs_its_key(served) -> None:  # noqa: ANN001
    url, _, (token, _), key = served
    assert httpx.get(f"{url}/api/admin/progress").status_code == 403
    assert httpx.get(f"{url}/api/admin/progress", headers={"X-Admin-Key": token}
                     ).status_code == 403  # a rater's token is not the key
    report = httpx.get(f"{url}/api/admin/progress", headers={"X-Admin-Key": key}).json()
    assert [r["label"] for r in report["raters"]] == ["rater1", "rater2"]
    assert len(report["images"]) == 7
    assert httpx.post(f"{url}/api/admin/raters/1/revoke").status_code == 403
    assert httpx.post(f"{url}/api/admin/raters/1/revoke", headers={"X-Admin-Key": key}
                      ).json() == {"rater": "rater1", "revoked": True}
    assert httpx.get(f"{url}/api/r/{token}").status_code == 404
    admin_page = httpx.get(f"{url}/admin").text
    assert "rater1" not in admin_page and "img0" not in admin_page  # data only with the key


def test_requests_are_limited_per_link(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2)
    token, other = [token for _, token in study.add_raters(2)]
    with ServerThread(create_rating_app(study.folder, rate=0.5, burst=5)) as server:
        codes = [httpx.get(f"{server.url}/api/r/{token}").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        assert httpx.get(f"{server.url}/api/r/{other}").status_code == 200  # not slowed
        guesses = [httpx.get(f"{server.url}/api/r/guess{k}").status_code for k in range(8)]
        assert guesses[:5] == [404] * 5 and guesses[5:] == [429] * 3


def test_a_slider_study_takes_0_to_100(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2, scale="slider")
    (rater, token), = study.add_raters(1)
    with ServerThread(create_rating_app(study.folder)) as server:
        assert httpx.get(f"{server.url}/api/r/{token}").json()["scale"] == "slider"
        assert httpx.post(f"{server.url}/api/r/{token}/rating",
                          json={"step": 0, "value": 100.5}).status_code == 422
        assert httpx.post(f"{server.url}/api/r/{token}/rating",
                          json={"step": 0, "value": 62.5}).status_code == 200
    assert [r.value for r in study.ratings()] == [62.5]


def test_an_error_answer_never_echoes_the_request(served) -> None:  # noqa: ANN001
    url, study, (token, _), _ = served
    marker = "ECHO-" + "x" * 500
    for body in ({"step": 0, "value": marker}, {"step": marker, "value": 3},
                 {"step": 0, "value": 3, marker: 1}, [marker], marker):
        reply = httpx.post(f"{url}/api/r/{token}/rating", json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert "ECHO" not in reply.text and isinstance(reply.json()["detail"], str)
    reply = httpx.get(f"{url}/api/r/{token}/image/{marker}")
    assert reply.status_code == 422 and "ECHO" not in reply.text
    assert study.ratings() == []


def test_a_body_over_the_limit_is_refused_unread(served) -> None:  # noqa: ANN001
    url, study, (token, _), _ = served
    big = b'{"step": 0, "value": 4, "pad": "' + b"x" * 5000 + b'"}'
    declared = httpx.post(f"{url}/api/r/{token}/rating", content=big,
                          headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.headers["connection"] == "close"
    chunked = httpx.post(f"{url}/api/r/{token}/rating", content=iter([big[:800], big[800:]]),
                         headers={"Content-Type": "application/json"})  # no Content-Length
    assert chunked.status_code == 413 and "xxxx" not in chunked.text
    assert study.ratings() == []
    assert httpx.post(f"{url}/api/r/{token}/rating", json={"step": 0, "value": 4}
                      ).status_code == 200


def test_wrong_admin_keys_do_not_lock_out_the_right_one(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2)
    key = study.set_admin_key()
    with ServerThread(create_rating_app(study.folder, rate=0.2, burst=3)) as server:
        wrong = [httpx.get(f"{server.url}/api/admin/progress",
                           headers={"X-Admin-Key": f"guess{k}"}).status_code for k in range(6)]
        assert wrong[:3] == [403] * 3 and wrong[3:] == [429] * 3  # guessing stays slow
        right = [httpx.get(f"{server.url}/api/admin/progress", headers={"X-Admin-Key": key})
                 for _ in range(3)]
        assert [reply.status_code for reply in right] == [200] * 3
        same_wrong = [httpx.get(f"{server.url}/api/admin/progress",
                                headers={"X-Admin-Key": "guess0"}).status_code
                      for _ in range(3)]
        assert set(same_wrong) == {429}


def test_an_address_is_limited_before_any_work_and_health_is_not(tmp_path: Path) -> None:
    study = make_study(tmp_path, images=2)
    (_, token), = study.add_raters(1)
    app = create_rating_app(study.folder, address_rate=0.5, address_burst=4)
    with ServerThread(app) as server:
        codes = [httpx.get(f"{server.url}/api/r/guess{k}").status_code for k in range(4)]
        assert codes == [404] * 4
        refused = httpx.get(f"{server.url}/api/r/{token}")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-frame-options"] == "DENY"
        assert [httpx.get(f"{server.url}/health").status_code for _ in range(10)] == [200] * 10


def test_ratings_sent_at_once_are_each_stored_then_acknowledged(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    study = make_study(tmp_path, images=3, repeats=0)
    tokens = [token for _, token in study.add_raters(24)]
    with ServerThread(create_rating_app(study.folder)) as server:
        def rate(token: str) -> list[int]:
            with httpx.Client(timeout=30) as client:
                return [client.post(f"{server.url}/api/r/{token}/rating",
                                    json={"step": step, "value": 1 + step}).json()["done"]
                        for step in range(3)]

        with ThreadPoolExecutor(len(tokens)) as pool:
            done = list(pool.map(rate, tokens))
    assert done == [[1, 2, 3]] * len(tokens)
    assert sorted((r.position, r.value) for r in study.ratings()) == sorted(
        [(step, 1.0 + step) for step in range(3)] * len(tokens))
