-- POST /v1/funding/grant with a fresh Idempotency-Key on every request: each one credits.
local counter = 0
local thread_tag = tostring(math.random(1, 1e9))
wrk.method = "POST"
wrk.path = "/v1/funding/grant"
wrk.headers["Authorization"] = "Bearer sk-quota-your-api-key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"external_user_id": "bench_user", "amount": 0.01, "description": "benchmark"}'

request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. thread_tag .. "-" .. counter
  return wrk.format()
end
