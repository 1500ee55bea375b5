-- POST /gpu-cloud/ssh-keys: a unique name and a unique real Ed25519 key per request.
--
-- BENCH_BODIES is a file of "API-KEY<TAB>JSON-BODY" lines that bench.run writes for this
-- one wrk invocation, the API keys spread over many owners so that the per-owner limit of
-- keys is never reached. wrk runs one Lua state per thread: thread t of n (BENCH_THREADS)
-- takes lines t, t+n, t+2n, ... so that no body is sent twice. The requests are built
-- once, in init, before wrk's clock starts.
--
-- A thread that runs out of lines starts again from its first one. For gpucloud that
-- is an error (the repeats get 409, and done() reports the shortfall, which bench.run
-- refuses); the ceiling stores nothing, so it is given BENCH_WRAP=1 and may repeat.
local statuses = dofile(os.getenv("BENCH_LUA_DIR") .. "/statuses.lua")
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
   statuses.setup(thread)
end

function init(args)
   local n = tonumber(os.getenv("BENCH_THREADS"))
   wrap = os.getenv("BENCH_WRAP") == "1"
   prepared = {}
   local i = 0
   for line in io.lines(os.getenv("BENCH_BODIES")) do
      if i % n == id then
         local tab = line:find("\t", 1, true)
         prepared[#prepared + 1] = wrk.format("POST", nil, {
            ["x-api-key"] = line:sub(1, tab - 1),
            ["Content-Type"] = "application/json",
         }, line:sub(tab + 1))
      end
      i = i + 1
   end
   used = 0
   exhausted = 0
end

function request()
   used = used + 1
   if used > #prepared and not wrap then
      exhausted = exhausted + 1
   end
   return prepared[(used - 1) % #prepared + 1]
end

function done(summary, latency, reqs)
   local most, short = 0, 0
   for _, thread in ipairs(threads) do
      most = math.max(most, thread:get("used"))
      short = short + thread:get("exhausted")
   end
   io.write(string.format("BENCH_USED %d\nBENCH_EXHAUSTED %d\n", most, short))
   statuses.report()
end
