-- GET the URL wrk is given (the list, or the authorized_keys file) as one owner
-- (BENCH_API_KEY), whose list holds 10 keys; with BENCH_IF_NONE_MATCH set, the request
-- carries that entity tag in If-None-Match (gpucloud then answers 304 with no body).
-- A static request: wrk's fastest path, so the load generator costs as little as it can.
local statuses = dofile(os.getenv("BENCH_LUA_DIR") .. "/statuses.lua")

wrk.method = "GET"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY")
local tag = os.getenv("BENCH_IF_NONE_MATCH")
if tag ~= nil and tag ~= "" then
   wrk.headers["If-None-Match"] = tag
end

setup = statuses.setup
done = statuses.report
