-- Shared by the other scripts (dofile): counts the status of every answer wrk receives.
--
-- wrk itself counts only statuses >= 400 as errors. With BENCH_COUNT_STATUSES=1 (bench.run
-- sets it for gpucloud's runs, not the ceiling's, whose answers are constant), each thread
-- counts its answers by status in response(); report(), called from done(), prints one
-- "BENCH_STATUS <status> <count>" line per status, summed over the threads. Defining
-- response() makes wrk parse every answer's headers and body for Lua, which costs wrk
-- (never the server) some CPU on its own core; the report shows wrk's CPU per round.
local statuses = {}
local threads = {}

function statuses.setup(thread)
   table.insert(threads, thread)
end

if os.getenv("BENCH_COUNT_STATUSES") == "1" then
   counted = {}
   function response(status, headers, body)
      counted[status] = (counted[status] or 0) + 1
   end
end

function statuses.report()
   local total = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("counted")
      if counts ~= nil then
         for status, count in pairs(counts) do
            total[status] = (total[status] or 0) + count
         end
      end
   end
   for status, count in pairs(total) do
      io.write(string.format("BENCH_STATUS %d %d\n", status, count))
   end
end

return statuses
