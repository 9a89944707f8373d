-- GET /v1/users/user_123/balance
wrk.method = "GET"
wrk.path = "/v1/users/user_123/balance"
wrk.headers["Authorization"] = "Bearer sk-quota-your-api-key"
