"""The ROCA test: was an RSA modulus made by the flawed Infineon library (CVE-2017-15361)?

Infineon's RSA library (in smart cards, TPMs, some YubiKey 4) made every prime as
p = k·M + (65537^a mod M), with M a primorial, so that the modulus N = p·q is
65537^(a+b) modulo M. Such keys can be factored from the public key alone (Nemec, Sys,
Svenda, Klinec, Matyas, "The Return of Coppersmith's Attack: Practical Factorization of
Widely Used RSA Moduli", ACM CCS 2017). The same structure gives a fingerprint, which
this module tests: is N modulo M in the subgroup that 65537 generates?

We follow the authors' detector (github.com/crocs-muni/roca, roca/detect.py) in two steps:

1. Its first, "moduli" test (`RocaFingerprinter.has_fingerprint_moduli`): for each of
   the 38 odd primes p from 3 to 167, N mod p must be a power of 65537 modulo p. A random
   modulus passes all 38 with probability about 2^-28, which is why step 2 exists.
2. Its exact test (`DlogFprint`, the detector's default, whose own tests hold crafted
   moduli that pass step 1 but not this): the discrete logarithms found in step 1 must
   agree, that is one exponent x must give N ≡ 65537^x modulo every p. A random
   modulus passes both with probability about 2^-155.

Both steps together are cheap for an ordinary key, which fails step 1 at one of the
first few primes.
"""

from __future__ import annotations

import math
from typing import Final

GENERATOR: Final = 65537

# The detector's list (`RocaFingerprinter.primes`): the odd primes up to 167. With 2 they
# make the primorial M that the library used for 512-bit keys; the M of larger keys is a
# multiple of it, so the same primes fingerprint every key size.
ROCA_PRIMES: Final[tuple[int, ...]] = (
    *(3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73),
    *(79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167),
)

# One division of a large N by this, then only small numbers for the 38 remainders.
_PRODUCT: Final = math.prod(ROCA_PRIMES)


def _discrete_logs(prime: int) -> dict[int, int]:
    """Each power of 65537 modulo `prime`, mapped to its exponent below the generator's order."""
    logs: dict[int, int] = {}
    power = 1
    while power not in logs:
        logs[power] = len(logs)
        power = power * GENERATOR % prime
    return logs


# The tables hold at most 166 entries each, a few thousand in all: computed once, on import.
# A table's size is the order of 65537 modulo its prime.
_LOG_TABLES: Final[tuple[tuple[int, dict[int, int]], ...]] = tuple(
    (prime, _discrete_logs(prime)) for prime in ROCA_PRIMES
)


def has_roca_fingerprint(n: int) -> bool:
    """True if the RSA modulus `n` has the structure of the Infineon flaw (ROCA).

    False for any other number, an even one included; never raises for an int.
    """
    if n % 2 == 0:
        return False  # no RSA modulus, and not 65537^x modulo the detector's M, which is even
    residue = n % _PRODUCT
    # The exponent found so far: N ≡ 65537^exponent modulo every prime seen, and the
    # exponent is fixed modulo `period`, the least common multiple of their orders.
    exponent, period = 0, 1
    for prime, logs in _LOG_TABLES:
        log = logs.get(residue % prime)
        if log is None:
            return False  # step 1: not a power of 65537 modulo this prime
        order = len(logs)
        # Step 2: x ≡ exponent (mod period) and x ≡ log (mod order) have a common
        # solution only if they agree modulo the gcd; then the solution is unique
        # modulo the lcm (the Chinese remainder theorem for moduli not coprime).
        common = math.gcd(period, order)
        if (log - exponent) % common:
            return False
        step = (log - exponent) // common * pow(period // common, -1, order // common)
        exponent += period * (step % (order // common))
        period = period // common * order
    return True
