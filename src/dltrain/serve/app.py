"""The HTTP API of ``dl-serve``: ``POST /predict``, ``GET /health``, ``GET /card``.

Every request is data only: JSON rows, texts, or base64-encoded image bytes (no pickle,
no paths on the server's disk). Limits answer before any work: a body over the cap is
413, a batch over the cap or a malformed one 422 (400: not JSON at all), a prediction
over the time cap 503; each answer is ``{"error": "<one line>"}``. Predictions run in a
worker thread (ONNX Runtime and torch release the GIL), so a slow one does not stall
``/health``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dltrain.errors import UserError
from dltrain.serve.predictor import Predictor

#: The JSON key a request's items come under, per input kind.
KEYS = {"image": "images", "text": "texts", "table": "rows"}
SCALARS = (str, int, float, bool, type(None))


@dataclass
class Limits:
    max_body_bytes: int = 10 * 2**20
    max_batch: int = 64
    timeout_s: float = 10.0


class Refused(Exception):
    """A request answered with ``status`` and one line, before or instead of predicting."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(predictor: Predictor, limits: Limits) -> FastAPI:
    app = FastAPI(title="dl-serve", docs_url=None, redoc_url=None, openapi_url=None)
    key = KEYS[predictor.kind]

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "kind": predictor.kind, "task": predictor.spec.task}

    @app.get("/card")
    def card() -> dict[str, Any]:
        return predictor.card or {}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            items = _items(_json(await _body(request, limits)), key, limits)
            run = _runner(predictor, key, items)
            out = await asyncio.wait_for(run_in_threadpool(run), timeout=limits.timeout_s)
        except Refused as ex:
            return _error(ex.status, str(ex))
        except TimeoutError:
            return _error(
                503, f"the prediction took over {limits.timeout_s:g} s — send fewer items"
            )
        except UserError as ex:  # an image that does not decode, a row without a column
            return _error(422, str(ex))
        return JSONResponse({"predictions": predictor.answers(out)})

    @app.exception_handler(Exception)
    async def internal(request: Request, ex: Exception) -> JSONResponse:
        return _error(500, f"{type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}")

    return app


async def _body(request: Request, limits: Limits) -> bytes:
    """The body, refused (413) as soon as it is known to be over the cap: by its declared
    length, else while it streams in (chunked uploads declare none)."""
    declared = request.headers.get("content-length")
    too_big = Refused(
        413, f"the body is over {limits.max_body_bytes} bytes — send fewer or smaller items"
    )
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Refused(400, "the body is not valid JSON — send a JSON object") from None


def _items(payload: Any, key: str, limits: Limits) -> list[Any]:
    """The list under ``key``, checked: a non-empty list of the right item type, at most
    ``max_batch`` long."""
    if not isinstance(payload, dict) or key not in payload:
        got = ", ".join(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise Refused(422, f'this model takes {key}: send {{"{key}": [...]}} (got {got or "{}"})')
    items = payload[key]
    if not isinstance(items, list) or not items:
        raise Refused(422, f'"{key}" must be a non-empty list')
    if len(items) > limits.max_batch:
        raise Refused(
            422,
            f"{len(items)} {key} in one request, over the limit of {limits.max_batch}"
            " — split them into several requests",
        )
    want = {"images": str, "texts": str, "rows": dict}[key]
    for i, item in enumerate(items):
        if not isinstance(item, want):
            raise Refused(422, f"{key}[{i}] is a {type(item).__name__}, not a {want.__name__}")
        if key == "rows" and not all(isinstance(v, SCALARS) for v in item.values()):
            raise Refused(422, f"rows[{i}] has a value that is not a string, number or null")
    return items


def _runner(predictor: Predictor, key: str, items: list[Any]) -> Any:
    if key == "texts":
        return lambda: predictor.texts(items)
    if key == "rows":
        return lambda: predictor.rows(items)
    blobs = []
    for i, item in enumerate(items):
        try:
            blobs.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise Refused(
                422, f"images[{i}] is not base64 — send the file's bytes, base64-encoded"
            ) from None
    names = [f"images[{i}]" for i in range(len(blobs))]
    return lambda: predictor.images(blobs, names)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
