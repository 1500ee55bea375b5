"""gpucloud: the SSH-keys API of a GPU cloud."""

__version__ = "0.1.0"
