"""What runs on an instance: the command sshd asks at every login (SPEC 10).

Nothing is imported here, so that `python -m gpucloud.node.authorized_keys` loads only
that module and the standard library.
"""
