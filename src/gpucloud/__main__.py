"""`python -m gpucloud …`: the `gpucloud` command, from whichever interpreter runs it."""

from gpucloud.cli import main

main()
