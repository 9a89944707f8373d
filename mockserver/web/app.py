"""The app factory: assembles the mock from openapi.yaml and a :class:`MockConfig`.

Only assembly happens here, as in Flask's own tutorial: the state comes from ``state.py``,
the public routes from ``public_api.py`` (generated from openapi.yaml), the control API and
its dashboard from ``control_api.py`` (generated from admin-openapi.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..config import MockConfig
from .control_api import control_blueprint
from .cors import install_control_guard, install_cors
from .drop import DropConnectionMiddleware
from .errors import register_error_handlers
from .fast_lane import FAST_LANE_KEY, FastLane
from .journal_recorder import install_journal_recorder
from .public_api import register_operations
from .request_body import body_rules, install_body_reader
from .request_log import install_request_log
from .self_check import install_response_self_check
from .simulation import install_extra_headers
from .state import ANY_TEXT_CONVERTER, EXTENSION_KEY, AnyTextConverter, build_state


def create_app(config: MockConfig | Mapping[str, Any] | None = None) -> Flask:
    """Build a mock of the Quota Funding API with its own state."""
    if not isinstance(config, MockConfig):
        config = MockConfig.from_mapping(config)
    state = build_state(config)

    app = Flask("mockserver")
    app.url_map.converters[ANY_TEXT_CONVERTER] = AnyTextConverter
    # A path the contract does not define answers 404 in the envelope: Werkzeug would merge
    # "//" and answer a 308 redirect with an HTML page instead.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # keep the contract's field order, as the docs show it
    app.extensions[EXTENSION_KEY] = state
    # Plain public API requests are answered below Flask by the same code (fast_lane.py);
    # innermost, so that the journal's arrival stamp and the connection drop still wrap it.
    fast_lane = FastLane(app, app.wsgi_app, state)
    app.wsgi_app = fast_lane  # type: ignore[method-assign]
    app.extensions[FAST_LANE_KEY] = fast_lane
    if state.journal is not None:  # first: its hooks start before and end after all others
        fast_lane.recorder = install_journal_recorder(app, state, state.journal)
    register_error_handlers(app, state.contract, config.max_body_bytes)
    if config.cors_origins:
        install_cors(app, config.cors_origins)
    if config.admin_enabled:
        install_control_guard(app)
    install_body_reader(app, body_rules(state))
    install_extra_headers(app)
    # "Commit then drop" fault rules hang up below Flask, once the response is built.
    app.wsgi_app = DropConnectionMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    register_operations(app, state)
    if config.admin_enabled:
        app.register_blueprint(control_blueprint(state))
    if config.validate_responses:
        install_response_self_check(app, state.contract)
    if config.log_requests:
        install_request_log(app)
    return app
