"""`python -m pipeline draw`: a page to draw a digit on, showing the model's prediction live.

The standard library's HTTP server and one HTML page (a canvas, probability bars, plain JavaScript):
nothing to install, and nothing served but the page and `POST /predict`.  The page sends the canvas
as a PNG while the pen moves and when it lifts; the server normalises it with the same code as
`predict` (pipeline.images), so the page and the command line always agree, and answers with the
digit, the ten probabilities and the 28x28 image the model saw.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import logging
import threading
from pathlib import Path

from pipeline.images import ImageError, read_image, to_mnist
from pipeline.commands import add_address, add_model
from pipeline.inference import Predictor, default_model, load_predictor

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("draw.html")
MAX_UPLOAD = 5_000_000  # bytes: a 280x280 canvas is a few kB


class _Handler(http.server.BaseHTTPRequestHandler):
    predictor: Predictor
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
            digit = to_mnist(read_image(io.BytesIO(self.rfile.read(size))))
        except ImageError as error:
            return self._reply(422, {"error": str(error)})
        with self.lock:
            probabilities = self.predictor(digit[None])[0]
        return self._reply(
            200,
            {
                "digit": int(probabilities.argmax()),
                "probabilities": [round(float(p), 6) for p in probabilities],
                "pixels": digit.tolist(),
            },
        )

    def _reply(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    """The page's server, bound but not yet serving (port 0: any free port)."""
    handler = type("Handler", (_Handler,), {"predictor": staticmethod(predictor), "lock": threading.Lock()})
    return http.server.ThreadingHTTPServer((host, port), handler)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 8000)
    add_model(parser)


def main(host: str = "127.0.0.1", port: int = 8000, model: str | None = None) -> None:
    server = make_server(load_predictor(model or default_model()), host, port)
    print(f"Draw a digit: http://{host}:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
