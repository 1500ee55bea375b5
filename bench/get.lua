-- GET /gpu-cloud/ssh-keys as one owner (BENCH_API_KEY), whose list holds 10 keys.
-- A static request: wrk's fastest path, so the load generator costs as little as it can.
wrk.method = "GET"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY")
