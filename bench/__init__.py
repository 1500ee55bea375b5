"""The benchmark harness behind `make bench`: gpucloud against bare-Starlette ceilings, under wrk.

`bench.run` orchestrates and writes the report; `bench.load_data` builds (and caches) the
SQLite databases and the POST key pool; `bench.postgres` copies the small database into a
PostgreSQL template and clones it per scenario; `bench.ceiling` is the constant-answer app;
`bench.serve` starts either app on gpucloud's own server entry point; `bench/*.lua` drive
wrk (`statuses.lua` counts gpucloud's answers by status); `bench.extras` lists the extra
measurements of the report; `bench.profile` samples a loaded server with py-spy. Nothing
here is imported by gpucloud.
"""
