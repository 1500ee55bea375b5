"""The one error the key parser raises."""

from __future__ import annotations


class PublicKeyError(ValueError):
    """The text is not an acceptable public key.

    `message` (also `str(e)`) is one readable sentence telling the user what to do
    instead. It never echoes the input, which may be a private key. `code` is a short,
    stable name of the rule that refused the key (`"private-key"`, `"dsa"`, …), for
    tests and metrics; it is not meant for users.
    """

    message: str
    code: str

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __reduce__(self) -> tuple[type[PublicKeyError], tuple[str, str]]:
        # The default pickling replays `args`, which lacks `code`; multi-process
        # servers and test runners pickle exceptions.
        return (type(self), (self.message, self.code))
