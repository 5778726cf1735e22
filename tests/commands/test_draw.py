"""The draw page in a real headless browser (Debian's chromium, driven by Playwright): draw, read the answer."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from pipeline.commands.draw import make_server
from pipeline.infra.params import load_params
from pipeline.reading.models import load_predictor
from pipeline.reading.numbers import load_touching

pytestmark = pytest.mark.e2e
STROKES = {  # pen paths on the left 280x280 of the pad, as a person draws these digits
    7: [[(70, 60), (210, 60), (120, 230)]],
    1: [[(140, 50), (140, 230)]],
    0: [[(140, 50), (80, 90), (70, 150), (90, 210), (140, 235), (190, 210), (210, 150), (200, 90), (140, 50)]],
    4: [[(170, 240), (170, 40), (60, 170)], [(60, 170), (220, 170)]],
}


@pytest.fixture(scope="module")
def page_url(digit_model):
    detector = load_touching(digit_model.touching_path)
    server = make_server(load_predictor(digit_model.onnx_path), detector, load_params().evaluate, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_drawn_digits_are_recognised_live(browser, page_url):
    page = browser.new_page()
    page.goto(page_url)
    for digit, strokes in STROKES.items():
        page.click("#clear")
        assert page.inner_text("#number") == ""
        _draw(page, strokes)
        assert page.inner_text("#number") == str(digit)
        shown = [float(page.inner_text(f"#p{d}").rstrip("%")) for d in range(10)]
        assert sum(shown) == pytest.approx(100, abs=0.6) and max(shown) == shown[digit]
        assert page.inner_text("#error") == ""
    page.close()


def test_a_number_is_read_digit_by_digit_with_maps(browser, page_url):
    page = browser.new_page()
    page.goto(page_url)
    _draw(page, STROKES[7] + [[(x + 400, y) for x, y in stroke] for stroke in STROKES[4]])
    assert page.inner_text("#number") == "74"
    assert page.locator("#digits figcaption").all_inner_texts() == ["7", "4"]
    warm = page.evaluate(
        """[...document.querySelectorAll('#digits canvas')].map(canvas => {
             const data = canvas.getContext('2d').getImageData(0, 0, 28, 28).data;
             let warm = 0;
             for (let i = 0; i < data.length; i += 4) { if (data[i] - data[i + 2] > 100) warm++; }
             return warm;
           })"""
    )
    assert len(warm) == 2 and min(warm) > 0  # each digit shows its map over it
    page.locator("#digits figure").nth(1).click()  # the second digit's probabilities
    shown = [float(page.inner_text(f"#p{d}").rstrip("%")) for d in range(10)]
    assert max(shown) == shown[4] and page.inner_text("#selected") == "2 (4)"
    page.close()


def _draw(page, strokes: list[list[tuple[int, int]]]) -> None:
    """Draw `strokes` on the pad with the mouse and wait for the page's answer."""
    pad = page.locator("#pad").bounding_box()
    for stroke in strokes:
        page.mouse.move(pad["x"] + stroke[0][0], pad["y"] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(pad["x"] + x, pad["y"] + y, steps=8)
        page.mouse.up()
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)


def test_page_reports_a_blank_pad_and_bad_requests(browser, page_url):
    page = browser.new_page()
    page.goto(page_url)
    pad = page.locator("#pad").bounding_box()
    page.mouse.click(pad["x"] + 5, pad["y"] + 5)  # a click without a stroke: nothing drawn, nothing asked
    assert page.inner_text("#number") == "" and page.evaluate("document.body.dataset.state") == "empty"
    page.close()
    blank = urllib.request.Request(f"{page_url}/predict", data=_png(np.full((28, 28), 255, np.uint8)))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(blank, timeout=30)
    assert refused.value.code == 422 and "blank" in json.loads(refused.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{page_url}/nothing", timeout=30)
    assert missing.value.code == 404


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
