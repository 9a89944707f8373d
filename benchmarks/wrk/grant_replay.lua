-- POST /v1/funding/grant with one Idempotency-Key and body: every request after the first replays.
wrk.method = "POST"
wrk.path = "/v1/funding/grant"
wrk.headers["Authorization"] = "Bearer sk-quota-your-api-key"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "bench-replay"
wrk.body = '{"external_user_id": "bench_user", "amount": 0.01, "description": "benchmark"}'
