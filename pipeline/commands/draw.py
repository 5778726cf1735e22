"""`python -m pipeline draw`: a page to draw a digit, or a number, on, showing the model's reading live.

The standard library's HTTP server and one HTML page (a canvas, probability bars, plain JavaScript):
nothing to install, and nothing served but the page and `POST /predict`.  The page sends the canvas
as a PNG while the pen moves and when it lifts; the server reads it with the same code as `predict`
(pipeline.images.segment), so the page and the command line always agree, and answers with the
number and, per digit, its ten probabilities, the 28x28 image the model saw and its occlusion map
(pipeline.ml.explain), which the page draws over it.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import logging
import threading
from pathlib import Path

import numpy as np

from pipeline.commands import add_address, add_model
from pipeline.images.digits import ImageError, read_image
from pipeline.images.segmentation import segment
from pipeline.infra.params import EvaluateParams, load_params
from pipeline.ml import explain
from pipeline.ml.predictors import Predictor
from pipeline.reading.models import default_model, load_predictor
from pipeline.reading.numbers import load_touching

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("draw.html")
MAX_UPLOAD = 5_000_000  # bytes: a 280x280 canvas is a few kB


class _Handler(http.server.BaseHTTPRequestHandler):
    predictor: Predictor
    touching: Predictor | None
    settings: EvaluateParams  # the occlusion maps' square and step, as the evaluate stage draws them
    lock: threading.Lock  # one prediction at a time: Keras models are not safe to call from many threads

    def do_GET(self) -> None:
        if self.path not in ("/", "/index.html"):
            return self._reply(404, {"error": f"no page {self.path}"})
        return self._reply(200, PAGE.read_bytes(), "text/html; charset=utf-8")

    def do_POST(self) -> None:
        if self.path != "/predict":
            return self._reply(404, {"error": f"no endpoint {self.path}"})
        size = int(self.headers.get("Content-Length") or 0)
        if not 0 < size <= MAX_UPLOAD:
            return self._reply(413, {"error": f"expected an image of 1 to {MAX_UPLOAD:,} bytes, got {size:,}"})
        try:
            grey = read_image(io.BytesIO(self.rfile.read(size)))
        except ImageError as error:
            return self._reply(422, {"error": str(error)})
        with self.lock:
            try:
                return self._reply(200, read_drawing(grey, self.predictor, self.touching, self.settings))
            except ImageError as error:
                return self._reply(422, {"error": str(error)})

    def _reply(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


def read_drawing(grey: np.ndarray, predictor: Predictor, touching: Predictor | None, settings: EvaluateParams) -> dict:
    """The page's answer for a drawing: the number, and per digit (left to right) the digit read, its
    ten probabilities, the 28x28 image the model saw and its occlusion map (both rows of 28 numbers)."""
    images = np.stack([digit.image for digit in segment(grey, predictor, touching)])
    probabilities = predictor(images)
    maps = explain.occlusion(
        predictor, images, probabilities.argmax(axis=1), settings.occlusion_patch, settings.occlusion_stride
    )
    return {
        "number": "".join(str(d) for d in probabilities.argmax(axis=1)),
        "digits": [
            {
                "digit": int(p.argmax()),
                "probabilities": [round(float(v), 6) for v in p],
                "pixels": image.tolist(),
                "map": np.round(saliency, 3).tolist(),
            }
            for image, p, saliency in zip(images, probabilities, maps, strict=True)
        ],
    }


def make_server(
    predictor: Predictor,
    touching: Predictor | None,
    settings: EvaluateParams,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> http.server.ThreadingHTTPServer:
    """The page's server, bound but not yet serving (port 0: any free port)."""
    detector = staticmethod(touching) if touching else None
    members = {"predictor": staticmethod(predictor), "touching": detector, "settings": settings}
    handler = type("Handler", (_Handler,), members | {"lock": threading.Lock()})
    return http.server.ThreadingHTTPServer((host, port), handler)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 8000)
    add_model(parser)


def main(host: str = "127.0.0.1", port: int = 8000, model: str | None = None, touching: Path | None = None) -> None:
    predictor, detector = load_predictor(model or default_model()), load_touching(touching)
    server = make_server(predictor, detector, load_params().evaluate, host, port)
    print(f"Draw a digit: http://{host}:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
