"""The benchmark harness behind `make bench`: gpucloud against a bare-ASGI ceiling, under wrk.

`bench.run` orchestrates; `bench.load_data` builds (and caches) the databases and the
POST key pool; `bench.ceiling` is the constant-answer app; `bench/*.lua` drive wrk;
`bench.profile` samples a loaded server with py-spy. Nothing here is imported by gpucloud.
"""
