"""The names the benchmark run gives its servers and its headline scenario, shared by the run
and by the sections of RESULTS.md."""

MOCK, BARE, PRISM = "quota-mock", "bare Flask", "Prism"
REDIS_1, REDIS_2 = "quota-mock, Redis, 1 worker", "quota-mock, Redis, 2 workers"
REDIS_UNIX_1 = "quota-mock, Redis on a unix socket, 1 worker"
REDIS_1_NO_JOURNAL = "quota-mock, Redis, 1 worker, journal off"
THREADS_8 = "quota-mock, 8 threads"
# Each worker held to the same share of a core (benchmarks.cpu_caps), so that two workers,
# redis-server and wrk fit the machine: the workers' CPU grows with their number.
WORKER_SHARE = 0.5
REDIS_1_CAPPED = "quota-mock, Redis, 1 worker on half a core"
REDIS_2_CAPPED = "quota-mock, Redis, 2 workers on half a core each"
GRANT = "grant (fresh keys)"
