"""Response self-check: the mock validates its own responses against openapi.yaml.

Uses openapi-core, independent of the mock's own request validator, so a mismatch between
what the mock sends and what the contract says is caught by a second implementation.
Meant for tests (it costs milliseconds a response). A mismatch fails loudly: the response
is replaced by a 500 ``response_contract_violation`` naming what is wrong, and recorded.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from ..contract import Contract
from .state import flask_rule


def install_response_self_check(app: Flask, contract: Contract) -> None:
    from openapi_core import Config, OpenAPI
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse

    # Requests reach the mock on whatever host it runs on; let any server URL match. The
    # document itself is not validated again here (half a second an app, paid by every test
    # app): tests/contract/test_contract.py validates openapi.yaml with openapi-spec-validator.
    document = {**contract.document, "servers": [{"url": "/"}]}
    openapi = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
    operations = {(op.method, flask_rule(op.path)) for op in contract.operations}
    violations: list[str] = []
    app.extensions["quota_mock_response_violations"] = violations

    @app.after_request
    def _check(response: Response) -> Response:
        # Only the contract's operations: an unmatched route (404/405), an automatic OPTIONS
        # answer or the control API has no operation to check against, and streamed bodies
        # cannot be read twice.
        rule = request.url_rule
        if rule is None or response.is_streamed or (request.method, rule.rule) not in operations:
            return response
        errors = list(openapi.iter_response_errors(_openapi_request(), WerkzeugOpenAPIResponse(response)))
        if errors:
            message = f"{request.method} {request.path} -> {response.status_code}: " + "; ".join(
                _describe(e) for e in errors
            )
            violations.append(message)
            failure = jsonify({"error": {"code": "response_contract_violation", "message": message}})
            failure.status_code = 500
            return failure
        return response


def _openapi_request() -> Any:
    from openapi_core.contrib.flask import FlaskOpenAPIRequest
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest

    try:
        request.get_data(cache=True)
    except RequestEntityTooLarge:
        # The body was refused unread (413); the response is checked against the same
        # operation with the body left out, rather than reading it after all.
        bodiless = EnvironBuilder(method=request.method, path=request.path, headers=list(request.headers.items()))
        return WerkzeugOpenAPIRequest(bodiless.get_request())
    return FlaskOpenAPIRequest(request)


def _describe(error: Exception) -> str:
    causes = [str(error)]
    cause = error.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            causes.extend(str(e.message) for e in schema_errors)
        cause = cause.__cause__
    return " | ".join(causes)
