"""The API's one error model: every JSON error is an RFC 9457 problem (`ErrorOut`), and every
operation of the OpenAPI document declares the errors it can answer, in that shape."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

from touchline.workspace.schemas import ErrorOut, FieldErrorOut

PROBLEM_MEDIA_TYPE = ErrorOut.MEDIA_TYPE
_PROBLEM_REF = {"$ref": "#/components/schemas/ErrorOut"}
_WRITES = frozenset({"post", "put", "patch", "delete"})
_DESCRIPTIONS = {
    400: "The request cannot be carried out as sent",
    401: "No API token, or an unknown or revoked one",
    403: "The token's role lacks a permission this operation needs",
    404: "No such record in the caller's workspace (another workspace's ids are not found either)",
    409: "The change contradicts what is stored (a duplicate name, a domain owned elsewhere)",
    413: "The request body is larger than the server accepts",
    422: "The request breaks the schema (see `errors`) or a business rule (see `detail`)",
    429: "Too many attempts; wait as long as Retry-After says",
}


def problem(status: int, detail: str, **extensions: Any) -> dict[str, Any]:
    """The body of an error answer; `extensions` add members of the answer's own."""
    body = ErrorOut.of(status, detail).body()
    return {**extensions, **body}


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extensions: Any
) -> JSONResponse:
    return JSONResponse(
        problem(status, detail, **extensions),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def problem_bytes(status: int, detail: str) -> bytes:
    """The same body for answers sent below the framework (the request-size limit)."""
    return json.dumps(problem(status, detail)).encode()


def validation_problem(errors: Sequence[Any]) -> JSONResponse:
    """A 422 for a request that breaks the schema: a sentence naming each field, and the fields."""
    fields = [
        FieldErrorOut(loc=list(error.get("loc", ())), msg=str(error.get("msg", "")), type=str(error["type"]))
        for error in errors
    ]
    detail = "; ".join(f"{'.'.join(str(part) for part in field.loc)}: {field.msg}" for field in fields)
    return problem_response(
        422,
        detail or "the request breaks the schema",
        errors=[field.model_dump(mode="json") for field in fields],
    )


def _error_codes(path: str, method: str, operation: Mapping[str, Any]) -> set[int]:
    """The errors an operation can answer, from what it takes: a token (401, 403), ids (404), input
    (422; 400 for input that cannot be used; 413 for a body), a change (409)."""
    codes: set[int] = set()
    authenticated = bool(operation.get("security"))
    takes_input = bool(operation.get("parameters")) or "requestBody" in operation
    if authenticated:
        # Any service call may find the caller's own records gone (a mailbox, a profile): 404.
        codes |= {401, 403, 404, 422}
    if "{" in path or takes_input:
        codes |= {404, 422}
    if "requestBody" in operation:
        codes |= {400, 413}
    if method in _WRITES:
        codes |= {400, 404, 409}
    return codes


def declare_errors(document: dict[str, Any]) -> None:
    """Give every API operation its error answers, each a `ErrorOut`; an answer a route declared
    itself keeps its own description and schema (a subclass of `ErrorOut`), in the problem media type."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorOut, FieldErrorOut):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas[model.__name__].pop("$defs", None)
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for code in sorted(declared | _error_codes(path, method, operation)):
                answer = responses.setdefault(
                    str(code), {"description": _DESCRIPTIONS.get(code, HTTPStatus(code).phrase)}
                )
                content: dict[str, dict[str, Any]] = answer.get("content", {})
                schema: dict[str, Any] = next(iter(content.values()), {}).get("schema", _PROBLEM_REF)
                if schema.get("$ref") == "#/components/schemas/HTTPValidationError":
                    schema = _PROBLEM_REF
                answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": schema}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
