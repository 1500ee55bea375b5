"""The ROCA test (CVE-2017-15361) against the published detector, its test vectors, and real keys."""

from __future__ import annotations

import math

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucloud.pubkey import PublicKeyError, parse_public_key, roca
from gpucloud.pubkey.roca import ROCA_PRIMES, has_roca_fingerprint
from tests.support.keygen import (
    ROCA_PRIMORIAL,
    KeyCorpus,
    is_probable_prime,
    openssh_line,
    roca_primes,
    rsa_blob,
    rsa_private_key,
)

# --- Published values of the authors' detector, github.com/crocs-muni/roca ---

# roca/tests/test_fingerprint.py, test_primorial: the primorial M of the primes up to 167.
DETECTOR_PRIMORIAL = 962947420735983927056946215901134429196419130606213075415963491270
# roca/detect.py, DlogFprint: the order of 65537 modulo M, as its debug log prints it.
DETECTOR_GENERATOR_ORDER = 2454106387091158800
# roca/detect.py, RocaFingerprinter.prints: for each of its primes p, bit r is set if r is
# a power of 65537 modulo p.
DETECTOR_PRINTS = (
    *(6, 30, 126, 1026, 5658, 107286, 199410, 8388606, 536870910, 2147483646, 67109890),
    *(2199023255550, 8796093022206, 140737488355326, 5310023542746834, 576460752303423486),
    *(1455791217086302986, 147573952589676412926, 20052041432995567486),
    *(6041388139249378920330, 207530445072488465666, 9671406556917033397649406),
    *(618970019642690137449562110, 79228162521181866724264247298),
    *(2535301200456458802993406410750, 1760368345969468176824550810518),
    *(50079290986288516948354744811034, 473022961816146413042658758988474),
    *(10384593717069655257060992658440190, 144390480366845522447407333004847678774),
    *(2722258935367507707706996859454145691646, 174224571863520493293247799005065324265470),
    *(696898287454081973172991196020261297061886, 713623846352979940529142984724747568191373310),
    1800793591454480341970779146165214289059119882,
    126304807362733370595828809000324029340048915994,
    11692013098647223345629478661730264157247460343806,
    187072209578355573530071658587684226515959365500926,
)

# roca/tests/data: moduli the detector's README lists as positive (vulnerable) keys.
PUBLISHED_VULNERABLE_MODULI = {
    "mod01 (512 bits)": int(
        "944e13208a280c37efc31c3114485e590192adbb8e11c87cad60cdef0037ce99"
        "278330d3f471a2538fa667802ed2a3c44a8b7dea826e888d0aa341fd664f7fa7",
        16,
    ),
    "mod02 (512 bits)": int(
        "a23475d6b86e7deb1e1483747c0e1aaa1390f24dcbc0d05399d025c985861601"
        "d91ba7a1ce5dd9d9721fac7b65cbf73f9fa39399f6cbf33edc6e094f9eda639f",
        16,
    ),
    "mod03 (2048 bits)": int(
        "9dcd7420e420c270a68060eb8b5aa7457a9f6648f86fafed2775cc1f79ae962f"
        "1e63f1b9e51c55f9ea6fdc7332e9b0058c9ff2eb1fc89855029cf6aafe21e689"
        "feb38ac9ffb12f1ce371bb5d0e9aae64161abce74b4244bf68f1edb4411f756a"
        "097c8929c14740245ea355f8332d1aa36bb50c7dcb4505da8de02e4e53d38f8d"
        "f06097da7524df0df93db48eac8cc4af2d3a16257eb2b2adca6ba464e5974fa9"
        "2550d31b1babf161e7692d00b86e3dd886ecab4abfbe1a8f8cc263ff4af55cdb"
        "45f4249a5193925f5e983d762f0b6800943eb0267b08f42ed311ce1f5c86eacb"
        "c8ce4d3cb7a2fee1ef5641423a1cf4114e5ecf50034a60a412523af9e6f4aa11",
        16,
    ),
    "mod08 (1021 bits)": int(
        "1db349e1f58f5d41f65aa5b0ffa6ae0cea80de6c170b2b4abf9c358d79494ca5"
        "9cab008f5ee92759b91d497e2131701047f953935a163e91db5460c82566f4df"
        "0c05bca02a8576f7c4e916b274e2f307b56fc8a20ad452b1b54d3924726a3b23"
        "29da882c7b8e102379dfe7a8c6b01d62e7ff0fd58e1e9822f6e32b5b0486561fb",
        16,
    ),
    "mod09 (4096 bits)": int(
        "c39a928060db513091b604eadad719ed94e246de8fe15fb76efab5cfabbc3fc5"
        "486fe2ef2a5a5a8472f0c5be089edec071fb284df4467fa1fa6c8f0b013d3173"
        "fe636744666289bf67b5c998c87b59015d94bb9c20d30a70cfe275e42fd3c6f4"
        "4d4c5252f9c6b6803f92afd928153bdb90ef08ede934c076f33543f9a1c36213"
        "0929b9a1324c5ebee6831c251c48a7dee24d75ac538ce9a58d7ff09c12a5d772"
        "b6c33f4265a4e4830bd73ad221d24d4d3f092e24279c15fc1d10ca69561f4f07"
        "1313c86b11ab36a5dd28df392f581834eecfdc9e183a466198e33cf01d273bd4"
        "1d4b7e288cc66f24eba04676bd2090f6f73830336a317bc2d423b558b9d8f632"
        "e12af7b0e7fc9bdb69282e81fdf41a68cf4e85f01fc343dfe52a3ad01f67459d"
        "380165159e1209ef1ce4ecd26648e061faf0896551f7f1f92d6b6a19af0ab7f1"
        "f092d7e168bcec0ee478b8618489a8967a71e5e0a5c197662d8e9756f090a177"
        "109d4a34ae20a18c5629efea5ca66623960fc325f779cdae891a7ec051f00e83"
        "7b8f2fb9fd19f6a35832ca0e5ce8375972c42a308f7d5ca0434022c131874087"
        "e826ed737994e46fbe44f5f1e908934f6033e6851ebd05447dddbaa51c067184"
        "9cafd3a503cdc150101914edf33b140c168c3dbea4791e74ea619ab1b31c9069"
        "1de1d425b746b222a2b26ed54222cbcaf27a054f9f66f77be6466198c33e37dd",
        16,
    ),
}
# roca/tests/data/ssh06.pub, a positive sample: an ssh-rsa key of 2049 bits.
PUBLISHED_VULNERABLE_SSH_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQGpxaaH24+yow+C3/jdoVTCke8nsEsl4YW4qyDExqX2BIWf5Z7eVKCvfA5y"
    "iIAK1xk7tzGlvx4RcNehxmkw1B6j6yHe33uK9dQqkcNPcgRblu/VfLGCMB3cwmln5VCOmriJmG1X6Dff5w+Z/DfEmPQ8F8O5"
    "sGTPcERD16Az4DqCFpeqvzD7Ke59M7N2eWWokFjjs5dUvTocAH0oojsM+nn51xGsbkxLT3ewY0sezWhZGvA8fVO2Kl8tkRY9"
    "TvT48mgxrkYe2F7F94jFEj/8Esh0IP3P6h0bSlLDUhgk+zmYNIc5tiqYbY52siibwuuLwG0TgUeFG4OgcYPSEFWfkGMh"
)
# roca/tests/data/mod04.txt, a negative sample of 2048 bits.
PUBLISHED_SAFE_MODULUS = int(
    "af659676197f1db06da7ac111a0a0ec175b8b7ef07192ffcd1f6b854c327785f"
    "1a7fd3db7da45cd4a31b2b2e5ce0d823a68e28c8adf1747316becce1fe576806"
    "4039ad2062260c8d1a34e0586dce9bc13090fcc9fb8b8b2c08ed3ae8d61b2981"
    "8a669689a7d9c1dab053b557fb8d3f9c44faad3e18c55e739b00d3c9126558bc"
    "8e980cd2af377126ef5b1374136774b8bd370e3c1c149db395c8f99696b628b1"
    "05946fea20106fe24d103ac062661a9248e8c3f628e00b308d33953aabe55513"
    "2e218e74ef4b578716b4fe7cf340e8e604a319bf6e9951e1942601d34291032d"
    "b54999d09e5d036dde3544ad35256bbb97d5e3fffd38166c21eae9199548853b",
    16,
)
# roca/tests/test_fingerprint.py, test_fake_mods: moduli crafted to pass the per-prime
# "moduli" test, which the exact ("dlog") test must not flag.
PUBLISHED_CRAFTED_MODULI = (
    72414128973967872688332736535017614208620368242015797102796086827882754006260204061799547004983731426777596445658889886861027045033760014948048067467947960318205453778973975867532910489227970143091184725760290172935872752222320334100097730483600892686353719855397381316384244147860260153198611313067061116317,
    138345973265163614694352477004469191286459111070564516299381495188624946671065451924677704628892476011773201612117597303315530745738015579159106259811204610647347662150159814774894784524366138220226431598991937057442020694466365850170057813627445465881816985939192840583168136876337135351417253708364245923133,
    60828061238058485055546209519792949600733446820687109700021551748017165461584398468231416589035982737511901116540885252089750919566836183252857475484338913841291095222387779067564971983760619814471104385614285949705697261702933899278537712383849527252611987939947273446907728942539157463443880598175266703887,
    89537174583470428126368559122733093792771267470145172261204043737374783295746735770977275377863486022234354929860172558745137290320682223277990399066906105916137221611218740752167456538787695936927885201842306174187254104613077236292789788064415254034851612157179926431228950237250716554645306298514263908811,
    106012262050781200106909327696665817682864459575156325008493049499578896429709338134583432679663875229243561266610327817994340312544432988100581205278527652776797129380732775139010348828146830433114148695545628251479471386655045041620711043660854155633665634387716779804052874716264079804365681200926368878541,
    98047438997515280074792701497622826536971900999197902469801657195397532486098993597664864573258672004307512856021908739030566926963054863998516343042890871462635847748128662678669505745602483507470396856696130729682439145004123654578085621747843892166517045343501758093052905936670793527374604000360320123643,
    48107859163997579694864893504886560528514286462252528518753580114887818750322128218646068205130016527298578884960923054955072510745551784643455001265439464144751949280776912819502350769576504234639747590328838926697492194274517633949025303073843002256820311079628923909309353364288514091223779706534988233353,
    95193465162148191217844814565725476305218769551232988131351154011966624770961320486395571928859840281251870272532908194236488486001519948267693888769624645565515338392649711205572847326959985300653388437498035890136677149175252923464027081780534454300684502200232492689914254307896522690747556123142494605401,
    168489441676498254188251084620317730514271361861339944910962927459542807975808481932360687459768443345754506784027235857753721317508760585508375364503886428020727192193297507131796130690248490645731180656182669717283026722056291513041731668953221561576833358510127447655469989100576330621949276177058083620677,
    127791896675045040395064468573109425010219774613093240038326469106056928318395608480165676859635771156871330139281596703754063207095456065784747740162970184880536590144647003492364759169502217854388165521994268206346785403332622195574508223431200064645819724980706217912475871209058082764033948277691466089251,
)

ROCA_CODE = "rsa-roca"


def refusal(text: str) -> PublicKeyError:
    """The error `text` is refused with; fails the test if it is accepted."""
    with pytest.raises(PublicKeyError) as caught:
        parse_public_key(text)
    return caught.value


def modulus_of(public_line: str) -> int:
    """The RSA modulus of an ssh-rsa line, as `cryptography` reads it."""
    key = load_ssh_public_key(public_line.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key.public_numbers().n


def passes_published_masks(n: int) -> bool:
    """The detector's first test, word for word: bit (N mod p) of each prime's mask is set."""
    return all(
        (1 << (n % prime)) & mask for prime, mask in zip(ROCA_PRIMES, DETECTOR_PRINTS, strict=True)
    )


def in_subgroup_of_65537(n: int) -> bool:
    """The detector's exact test, by its method: is N a power of 65537 modulo M?

    Pohlig-Hellman in (Z/MZ)*: N's component in each prime-power part of the generator's
    order must be a power of the generator's component. Slow, independent of roca.py.
    """
    order = DETECTOR_GENERATOR_ORDER
    if pow(n, order, DETECTOR_PRIMORIAL) != 1:
        return False
    for factor in (prime for prime in range(2, 168) if order % prime == 0):
        part = factor ** next(e for e in range(64, 0, -1) if order % factor**e == 0)
        generator_part = pow(65537, order // part, DETECTOR_PRIMORIAL)
        element_part = pow(n, order // part, DETECTOR_PRIMORIAL)
        if all(pow(generator_part, i, DETECTOR_PRIMORIAL) != element_part for i in range(part)):
            return False
    return True


# --- The test is the detector's ---


def test_primes_are_the_odd_primes_up_to_167() -> None:
    """If the prime list is read, then it is the detector's 38 odd primes, 3 to 167."""
    assert len(ROCA_PRIMES) == 38
    assert tuple(n for n in range(3, 168) if is_probable_prime(n)) == ROCA_PRIMES
    assert 2 * math.prod(ROCA_PRIMES) == DETECTOR_PRIMORIAL == ROCA_PRIMORIAL


def test_residue_tables_are_the_detectors_masks() -> None:
    """If each prime's table of powers of 65537 is read as a bit mask, then it is the published one."""
    masks = tuple(sum(1 << residue for residue in logs) for _, logs in roca._LOG_TABLES)
    assert masks == DETECTOR_PRINTS


def test_discrete_logs_in_the_tables_are_right() -> None:
    """If a table maps a residue to an exponent, then 65537 to that exponent is the residue."""
    for prime, logs in roca._LOG_TABLES:
        assert all(pow(65537, log, prime) == residue for residue, log in logs.items())
        assert sorted(logs.values()) == list(range(len(logs)))


def test_order_of_65537_is_the_detectors() -> None:
    """If the tables' sizes (the orders modulo each prime) are combined, then their lcm is published."""
    assert math.lcm(*(len(logs) for _, logs in roca._LOG_TABLES)) == DETECTOR_GENERATOR_ORDER


# --- Keys with the flaw are found ---


def test_constructed_roca_key_is_refused_by_the_parser() -> None:
    """If a real 2048-bit key is made as Infineon's library made them, then the parser refuses it."""
    p, q = roca_primes(2048)
    public = rsa_private_key(p, q).public_key().public_numbers()
    assert (public.e, public.n.bit_length()) == (65537, 2048)
    line = openssh_line("ssh-rsa", rsa_blob(public.e, public.n), "infineon@card")
    error = refusal(line)
    assert error.code == ROCA_CODE, f"refused by rule {error.code!r}: {error.message}"
    assert "ROCA" in error.message
    assert "CVE-2017-15361" in error.message
    assert "ssh-keygen -t ed25519" in error.message
    assert line.split()[1][:16] not in error.message
    assert "infineon" not in error.message


def test_published_vulnerable_ssh_key_is_refused_by_the_parser() -> None:
    """If the detector's vulnerable ssh-rsa sample is pasted, then it is refused as ROCA."""
    assert refusal(PUBLISHED_VULNERABLE_SSH_KEY).code == ROCA_CODE


def test_published_vulnerable_2048_bit_modulus_is_refused_by_the_parser() -> None:
    """If the detector's vulnerable 2048-bit modulus is in an ssh-rsa line, then it is refused."""
    modulus = PUBLISHED_VULNERABLE_MODULI["mod03 (2048 bits)"]
    assert refusal(openssh_line("ssh-rsa", rsa_blob(65537, modulus))).code == ROCA_CODE


@pytest.mark.parametrize("name", sorted(PUBLISHED_VULNERABLE_MODULI))
def test_published_vulnerable_moduli_are_flagged(name: str) -> None:
    """If a modulus is one of the detector's positive samples, then it has the fingerprint."""
    assert has_roca_fingerprint(PUBLISHED_VULNERABLE_MODULI[name])


def test_published_vulnerable_ssh_key_modulus_is_flagged() -> None:
    """If the detector's vulnerable ssh-rsa sample's modulus is tested, then it is flagged."""
    assert has_roca_fingerprint(modulus_of(PUBLISHED_VULNERABLE_SSH_KEY))


# --- Keys without the flaw are not ---


@pytest.mark.parametrize("kind", ["rsa2048", "rsa4096"])
def test_ssh_keygen_rsa_keys_are_not_flagged(key_corpus: KeyCorpus, kind: str) -> None:
    """If ssh-keygen made the RSA key, then it has no fingerprint and the parser accepts it."""
    line = key_corpus.keys[kind].public_line
    assert not has_roca_fingerprint(modulus_of(line))
    assert parse_public_key(line).key_type == "ssh-rsa"


def test_cryptography_rsa_moduli_are_not_flagged() -> None:
    """If `cryptography` makes 200 RSA keys, then none has the fingerprint."""
    # 1024 bits keeps this fast; the fingerprint does not depend on the size.
    moduli = [
        rsa.generate_private_key(65537, 1024).public_key().public_numbers().n  # noqa: S505
        for _ in range(200)
    ]
    assert [n for n in moduli if has_roca_fingerprint(n)] == []


def test_published_safe_modulus_is_not_flagged() -> None:
    """If a modulus is the detector's negative 2048-bit sample, then it is not flagged."""
    assert not has_roca_fingerprint(PUBLISHED_SAFE_MODULUS)


@pytest.mark.parametrize("index", range(len(PUBLISHED_CRAFTED_MODULI)))
def test_published_crafted_moduli_pass_the_masks_but_are_not_flagged(index: int) -> None:
    """If a modulus passes each prime's mask but no one exponent fits all, then it is not flagged."""
    modulus = PUBLISHED_CRAFTED_MODULI[index]
    assert passes_published_masks(modulus)
    assert not has_roca_fingerprint(modulus)


def test_even_numbers_are_not_flagged() -> None:
    """If the number is even, even twice a power of 65537 modulo M, then it is not flagged."""
    assert not has_roca_fingerprint(2 * PUBLISHED_VULNERABLE_MODULI["mod03 (2048 bits)"])
    assert not has_roca_fingerprint(0)


# --- The same answer as the detector's exact test, for any modulus ---

ROCA_SETTINGS = settings(max_examples=300, deadline=None)

# Odd numbers that are 65537^x modulo M: all flagged.
powers_of_65537 = st.builds(
    lambda x, k: pow(65537, x, DETECTOR_PRIMORIAL) + k * DETECTOR_PRIMORIAL,
    st.integers(0, 2**64),
    st.integers(0, 2**2048),
)
# Odd numbers whose remainder modulo each prime is a power of 65537, with exponents drawn
# independently per prime: they pass the masks, and only sometimes share one exponent.
per_prime_powers = st.builds(
    lambda exponents, k: (
        sum(
            pow(65537, e, p) * (DETECTOR_PRIMORIAL // p) * pow(DETECTOR_PRIMORIAL // p, -1, p)
            for e, p in zip(exponents, (2, *ROCA_PRIMES), strict=True)
        )
        % DETECTOR_PRIMORIAL
        + k * DETECTOR_PRIMORIAL
    ),
    st.lists(st.integers(0, 165), min_size=39, max_size=39),
    st.integers(0, 2**64),
)
any_numbers = st.integers(0, 2**4096)


@ROCA_SETTINGS
@given(st.one_of(powers_of_65537, per_prime_powers, any_numbers))
def test_fingerprint_agrees_with_the_detectors_exact_test(n: int) -> None:
    """If any number is tested, then it is flagged exactly when the detector's dlog test flags it."""
    assert has_roca_fingerprint(n) == (n % 2 == 1 and in_subgroup_of_65537(n))


@ROCA_SETTINGS
@given(powers_of_65537)
def test_powers_of_65537_modulo_m_are_flagged(n: int) -> None:
    """If a number is 65537^x modulo M, for any x, then it is flagged."""
    assert has_roca_fingerprint(n)


# --- The test helpers ---


def is_prime_by_division(n: int) -> bool:
    """Slow and sure: no divisor up to the square root."""
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def test_primality_helper_agrees_with_trial_division() -> None:
    """If the helper judges small numbers and numbers past its trial division, then it is right."""
    # Past 1000², trial division alone cannot decide, and Miller-Rabin does.
    for n in (*range(-5, 3000), *range(10**6 - 1000, 10**6 + 3000)):
        assert is_probable_prime(n) == is_prime_by_division(n), n
    assert is_probable_prime(2**521 - 1)
    assert not is_probable_prime((2**521 - 1) * (2**607 - 1))


def test_primality_helper_refuses_carmichael_numbers() -> None:
    """If a Carmichael number has no factor below 1000, then the helper still finds it composite."""
    # Chernick's (6k+1)(12k+1)(18k+1) is a Carmichael number when the three are prime:
    # it fools Fermat's test for every base, so only Miller-Rabin's extra check catches it.
    found = 0
    for k in range(200, 20000):
        factors = (6 * k + 1, 12 * k + 1, 18 * k + 1)
        if all(is_prime_by_division(f) for f in factors):
            n = math.prod(factors)
            assert pow(2, n - 1, n) == 1
            assert not is_probable_prime(n), n
            found += 1
    assert found >= 5
