"""The control API's own OpenAPI file is valid and describes every /_mock route the mock serves."""

import re
from importlib import resources

import yaml
from openapi_spec_validator import validate

from mockserver import create_app

ADMIN_SPEC = yaml.safe_load(resources.files("mockserver").joinpath("admin-openapi.yaml").read_text(encoding="utf-8"))


def test_admin_spec_is_valid_openapi():
    validate(ADMIN_SPEC)


def test_admin_spec_and_routes_agree():
    app = create_app()
    served = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/_mock/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (method.upper(), path)
        for path, item in ADMIN_SPEC["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    assert served == documented


def test_admin_state_response_matches_its_schema():
    import jsonschema_rs

    state = create_app().test_client().get("/_mock/state").json
    schema = {**ADMIN_SPEC["components"]["schemas"]["State"]}
    assert jsonschema_rs.validator_for(schema).is_valid(state)
