-- GET /v1/packages (public)
wrk.method = "GET"
wrk.path = "/v1/packages"
