-- PATCH /gpu-cloud/ssh-keys/{id}/makedefault, cycling over an owner's 10 key ids.
--
-- BENCH_OWNERS is a file of "API-KEY<TAB>ID,ID,..." lines (one owner each, 10 ids).
-- Thread t acts as owner t, so that one thread's consecutive requests each make another
-- of its owner's keys the default (a real change, not the no-op of "already default").
-- The 10 requests of each thread are built once, in init.
local statuses = dofile(os.getenv("BENCH_LUA_DIR") .. "/statuses.lua")
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   statuses.setup(thread)
end

function init(args)
   local owners = {}
   for line in io.lines(os.getenv("BENCH_OWNERS")) do
      owners[#owners + 1] = line
   end
   local line = owners[id % #owners + 1]
   local tab = line:find("\t", 1, true)
   local key = line:sub(1, tab - 1)
   prepared = {}
   for key_id in line:sub(tab + 1):gmatch("[^,]+") do
      prepared[#prepared + 1] = wrk.format(
         "PATCH", wrk.path .. "/" .. key_id .. "/makedefault", { ["x-api-key"] = key }, nil
      )
   end
   sent = 0
end

function request()
   sent = sent + 1
   return prepared[(sent - 1) % #prepared + 1]
end

done = statuses.report
