"""The WSGI entry point of quota-mock's server workers.

``quota-mock`` validates its options, then starts granian, whose worker processes import
this module and build their own app from the configuration the CLI handed them. Each
worker builds its own, so that no connection (to Redis, say) is shared across a fork.
"""

from __future__ import annotations

import gc
import logging
import sys

from flask import Flask

from .config import MockConfig
from .web.app import create_app


def app_from_environment() -> Flask:
    config = MockConfig.from_environment()
    if config.log_requests and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    app = create_app(config)
    # Everything built so far (modules, the parsed contract, compiled validators) lives as
    # long as the process: move it out of the garbage collector's sight, so that full
    # collections only scan what requests create.
    gc.freeze()
    return app
