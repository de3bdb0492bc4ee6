"""Every HTTP error of the cloud API leaves as an ErrorEnvelope body, never a bare string.

Routes raise `ApiError`; the handlers installed here also translate FastAPI's request
validation errors, Starlette's HTTP errors (unknown route, wrong method) and anything
unexpected, so a client parses one shape whatever went wrong.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.contracts.errors import ErrorCategory, ErrorEnvelope

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure of a route, with the HTTP status and the envelope to send."""

    def __init__(self, status_code: int, envelope: ErrorEnvelope) -> None:
        super().__init__(envelope.message)
        self.status_code = status_code
        self.envelope = envelope


def envelope_response(status_code: int, envelope: ErrorEnvelope) -> JSONResponse:
    return JSONResponse(envelope.model_dump(mode="json"), status_code=status_code)


def _category(status_code: int) -> ErrorCategory:
    if status_code == 429:
        return "rate_limit"
    if status_code in (503, 502):
        return "unavailable"
    if status_code == 504:
        return "timeout"
    return "validation"


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return envelope_response(exc.status_code, exc.envelope)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return envelope_response(422, ErrorEnvelope(
        code="request.invalid", category="validation",
        message="invalid request: " + "; ".join(problems),
    ))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return envelope_response(exc.status_code, ErrorEnvelope(
        code=f"http.{exc.status_code}", category=_category(exc.status_code),
        message=str(exc.detail), retryable=exc.status_code in (429, 502, 503, 504),
    ))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return envelope_response(500, ErrorEnvelope(
        code="internal", category="unavailable", message="internal error; try again later",
        retryable=True,
    ))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
