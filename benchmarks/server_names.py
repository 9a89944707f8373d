"""The names the benchmark run gives its servers and its headline scenario, shared by the run
and by the sections of RESULTS.md."""

MOCK, BARE, PRISM = "quota-mock", "bare Flask", "Prism"
REDIS_1, REDIS_2 = "quota-mock, Redis, 1 worker", "quota-mock, Redis, 2 workers"
REDIS_UNIX_1 = "quota-mock, Redis on a unix socket, 1 worker"
REDIS_1_NO_JOURNAL = "quota-mock, Redis, 1 worker, journal off"
THREADS_8 = "quota-mock, 8 threads"
GRANT = "grant (fresh keys)"
