"""The framework's ceiling: bare Flask answering the same JSON as the mock, with no
validation, no state and no auth, under the same server as ``quota-mock``."""

from __future__ import annotations

import argparse

from flask import Flask, jsonify

GRANT = {
    "external_user_id": "bench_user",
    "amount_granted": "$0.01",
    "balance_before": "$5.00",
    "balance_after": "$5.01",
    "ledger_id": "ledg_0123456789abcdef0123",
    "duplicate": False,
}
BALANCE = {"external_user_id": "user_123", "balance": "$5.00", "billing_mode": "user", "balance_microdollars": 5000000}
PACKAGES = {
    "packages": [
        {"id": "starter", "name": "Starter", "price_cents": 500, "balance_display": "$4.05"},
        {"id": "basic", "name": "Basic", "price_cents": 1000, "balance_display": "$8.50"},
        {"id": "plus", "name": "Plus", "price_cents": 2500, "balance_display": "$22.50"},
        {"id": "pro", "name": "Pro", "price_cents": 5000, "balance_display": "$46.50"},
    ]
}


def create_bare_app() -> Flask:
    app = Flask("bare")

    @app.post("/v1/funding/grant")
    def grant():
        return jsonify(GRANT)

    @app.get("/v1/users/<external_user_id>/balance")
    def balance(external_user_id: str):
        return jsonify(BALANCE)

    @app.get("/v1/packages")
    def packages():
        return jsonify(PACKAGES)

    return app


def main() -> None:
    from mockserver.server import serve

    parser = argparse.ArgumentParser(description="bare Flask under quota-mock's server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1, help="as quota-mock's default")
    args = parser.parse_args()
    serve("benchmarks.bare_app:create_bare_app", "127.0.0.1", args.port, threads=args.threads)


if __name__ == "__main__":
    main()
