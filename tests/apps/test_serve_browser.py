"""The page at `/` in a real browser: headless Chromium, driven by Selenium, against a server on 127.0.0.1.

`make test` installs Debian's `chromium` and `chromium-driver` when they are missing and apt-get can; the test is
skipped (saying so) only where no browser is found.
"""

import json
import shutil
import urllib.request

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="hrnet serve needs the 'serve' extra (pip install -e '.[serve]')")
pytest.importorskip("selenium", reason="the browser test needs selenium (the 'dev' extra)")
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hrnet.apps.serve import ServeLimits, create_app

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no Chromium and chromedriver on PATH: `make test` installs them with apt-get where it can "
    "(Debian: apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def server(served, live_server):
    """The app served as ``hrnet serve`` runs it, on a free port of 127.0.0.1; yields its base URL."""
    limits = ServeLimits()
    with live_server(create_app(served[0], limits=limits, model_name="tiny"), limits) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _wait_for_result(driver, seconds: float = 120) -> str:
    WebDriverWait(driver, seconds).until(
        lambda d: d.execute_script("return document.body.dataset.state") in ("done", "error")
    )
    return driver.execute_script("return document.body.dataset.state")


def _api(server: str, photo) -> dict:
    boundary = "hrnet-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{photo.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{server}/v1/pose", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.mark.slow
def test_the_page_draws_the_poses_of_a_photo(server, browser, datasets_dir, tmp_path):
    photo = datasets_dir / "coco" / "000000040083.jpg"  # 2 keypoints of the random model inside
    original = cv2.imread(str(photo))
    height, width = original.shape[:2]
    browser.get(server + "/")
    WebDriverWait(browser, 30).until(lambda d: "coco17" in d.find_element(By.ID, "model").text)

    # A file that is not an image: the server's reason is shown, and the page stays usable.
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a photo")
    browser.find_element(By.ID, "file").send_keys(str(not_image))
    assert _wait_for_result(browser) == "error"
    assert "400: upload: the image does not decode" in browser.find_element(By.ID, "status").text

    browser.execute_script("document.getElementById('threshold').value = '0'")  # draw every keypoint
    browser.find_element(By.ID, "file").send_keys(str(photo))
    assert _wait_for_result(browser) == "done", browser.find_element(By.ID, "status").text
    canvas = browser.find_element(By.ID, "view")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == (str(width), str(height))
    assert canvas.get_attribute("data-drawn") == "1"

    # The table holds what the API answers for the same photo.
    expected = _api(server, photo)
    keypoints = np.array(expected["persons"][0]["keypoints"]).reshape(-1, 3)
    rows = browser.find_elements(By.CSS_SELECTOR, "#keypoints tbody tr")
    assert len(rows) == 17
    table = [[c.text for c in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [r[1] for r in table] == expected["keypoint_names"]
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in table], keypoints, atol=0.051)
    low = [row.get_attribute("class") == "low" for row in rows]
    assert low == list(keypoints[:, 2] < 0)

    # The drawing. The whole-photo person box: a white line along the top edge (the photo is not white there).
    top = browser.execute_script(
        "return Array.from(document.getElementById('view').getContext('2d').getImageData(0, 0, arguments[0], 1).data)",
        width,
    )
    white = (np.array(top).reshape(-1, 4)[:, :3] > 230).all(axis=1)
    assert white.mean() > 0.9 and (original[0] > 230).all(axis=1).mean() < 0.5
    # The dots: at a keypoint inside the photo, the colour of the last dot drawn over it (drawing order).
    colours = json.load(urllib.request.urlopen(f"{server}/v1/model", timeout=30))["keypoint_colours"]
    radius = max(2, int(1.5 * max(1, round(np.sqrt(width * height) / 180)) + 0.5))
    shown = np.flatnonzero(keypoints[:, 2] >= 0)
    checked = 0
    for i in shown:
        x, y = (round(v) for v in keypoints[i, :2])
        if not (0 <= x < width and 0 <= y < height):
            continue
        near = [j for j in shown if np.hypot(*(keypoints[j, :2] - (x, y))) <= radius + 1.5]
        if np.hypot(*(keypoints[near[-1], :2] - (x, y))) > radius - 1:
            continue  # on the dark rim of a later dot
        pixel = browser.execute_script(
            "return Array.from(document.getElementById('view').getContext('2d')"
            ".getImageData(arguments[0], arguments[1], 1, 1).data)",
            x,
            y,
        )
        assert np.abs(np.array(pixel[:3]) - colours[near[-1]]).max() <= 3, (i, pixel)
        checked += 1
    assert checked, "no keypoint of the random model lies inside the photo: pick another photo"

    # A screenshot of the whole window, with the drawing in it.
    inner = browser.execute_script(
        "return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]"
    )
    shot = cv2.imdecode(np.frombuffer(browser.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    assert (shot.shape[1], shot.shape[0]) == tuple(round(v) for v in inner)
    assert shot.shape[1] >= 1000 and shot.shape[0] >= 700 and shot.std() > 20

    # Everything came from our server, and the page logged no error.
    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert origins and all(o.startswith(server + "/") for o in origins), origins
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "/v1/pose" not in e["message"]]
    assert not severe, severe


@pytest.mark.slow
def test_the_page_names_what_the_boxes_hold(task_experiment, live_server, browser, datasets_dir):
    """A hand model's page says "hand" where a person model's says "person": the note on boxes, the table's first
    column and the result line."""
    from hrnet.pose.estimator import PoseEstimator

    config_path, weights, _ = task_experiment("hand")
    estimator = PoseEstimator.from_config(config_path, weights, device="cpu", backend="pytorch")
    limits = ServeLimits()
    with live_server(create_app(estimator, limits=limits, model_name="hands"), limits) as port:
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 30).until(lambda d: "own_hand" in d.find_element(By.ID, "model").text)
        assert [e.get_attribute("textContent") for e in browser.find_elements(By.CLASS_NAME, "instance")] == [
            "hand",
            "hand",
        ]
        browser.find_element(By.ID, "file").send_keys(str(datasets_dir / "onehand10k" / "9.jpg"))
        assert _wait_for_result(browser) == "done", browser.find_element(By.ID, "status").text
        assert "9.jpg: 238×358, 1 hand, " in browser.find_element(By.ID, "status").text


class _Faults:
    """ASGI: the real app behind answers that go wrong as they do between a page and a server (a proxy, an old
    server, broken weights): ``answers[path]`` turns the real answer's body into (status, content type, body), and
    ``queries[path]`` is the query string the real app gets instead of the page's."""

    def __init__(self, app):
        self.app = app
        self.answers: dict = {}
        self.queries: dict = {}

    async def __call__(self, scope, receive, send):
        path = scope.get("path")
        if scope["type"] == "http" and path in self.queries:
            scope = {**scope, "query_string": self.queries[path]}
        if scope["type"] != "http" or path not in self.answers:
            await self.app(scope, receive, send)
            return
        real: list = []

        async def keep(message):
            real.append(message)

        await self.app(scope, receive, keep)
        status, kind, body = self.answers[path](b"".join(m.get("body", b"") for m in real[1:]))
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _with_nulls(body: bytes):
    """The real answer as broken weights give it: NaN keypoints, score and box written as null."""
    result = json.loads(body)
    person = result["persons"][0]
    person["keypoints"][:6] = [None] * 6
    person["score"] = None
    person["bbox"] = [None] * 4
    return 200, "application/json", json.dumps(result).encode()


@pytest.mark.slow
def test_answers_that_go_wrong_end_in_a_clear_message(served, live_server, browser, datasets_dir):
    """/v1/model failing before /v1/pose succeeds, a 200 that is not JSON, FastAPI's own 422 (a list of errors),
    and persons with null values: each ends in a message that says what happened, never in "[object Object]",
    a TypeError, or a drawing that silently never appears."""
    photo = str(datasets_dir / "coco" / "000000000785.jpg")
    limits = ServeLimits()
    faults = _Faults(create_app(served[0], limits=limits, model_name="tiny"))

    def upload() -> tuple[str, str]:
        browser.execute_script("document.body.dataset.state = 'idle'; document.getElementById('file').value = ''")
        browser.find_element(By.ID, "file").send_keys(photo)
        return _wait_for_result(browser), browser.find_element(By.ID, "status").text

    def drawn() -> str | None:
        return browser.find_element(By.ID, "view").get_attribute("data-drawn")

    with live_server(faults, limits) as port:
        faults.answers["/v1/model"] = lambda body: (500, "text/plain", b"Internal Server Error")
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 30).until(lambda d: "did not load" in d.find_element(By.ID, "model").text)
        assert (
            browser.find_element(By.ID, "model").text
            == "the model description did not load (500: Internal Server Error)"
        )
        state, status = upload()
        assert state == "error" and drawn() is None, status
        assert status == (
            "no result: 1 person found, but nothing can be drawn: the model description (/v1/model) did not load "
            "(500: Internal Server Error); reload the page"
        )
        # The model answers again: the next photo is drawn.
        del faults.answers["/v1/model"]
        assert upload()[0] == "done" and drawn() == "1"
        assert "coco17" in browser.find_element(By.ID, "model").text

        faults.answers["/v1/pose"] = lambda body: (200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
        state, status = upload()
        assert state == "error" and drawn() is None and not browser.find_element(By.ID, "keypoints").is_displayed()
        assert status == (
            'no result: the answer to /v1/pose is not JSON (text/html: "<html><body>Welcome to nginx!</body></html>"): '
            "is something between this page and the hrnet server?"
        )
        del faults.answers["/v1/pose"]

        faults.queries["/v1/pose"] = b"draw=maybe"  # FastAPI itself refuses it: 422, "detail" a list
        state, status = upload()
        assert state == "error" and "[object Object]" not in status
        assert status.startswith("no result: 422: query draw: Input should be a valid boolean"), status
        del faults.queries["/v1/pose"]

        faults.answers["/v1/pose"] = _with_nulls
        state, status = upload()
        assert state == "done" and drawn() == "1", status
        assert "; 11 values are missing (null: the network gave NaN), not drawn and shown as –" in status
        rows = browser.find_elements(By.CSS_SELECTOR, "#keypoints tbody tr")
        first = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
        assert first[0] == "1 (score –)" and first[2:] == ["–", "–", "–"]
        third = [c.text for c in rows[2].find_elements(By.TAG_NAME, "td")]
        assert rows[0].get_attribute("class") == "low" and "–" not in "".join(third[2:])
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "/v1/" not in e["message"]]
        assert not errors, errors
