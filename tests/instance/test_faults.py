"""What no real server does on purpose: stalling, garbage, bad lines, and (for now) ETags and 304s.

A fake API (tests/support/fake_api.py) answers these; the command must hold its timeout,
print only lines it has checked, and fall back to its cache only when it should.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import time
from pathlib import Path
from random import Random

import pytest

from tests.instance.command import BARE_ENVIRONMENT, COMMAND, Node
from tests.support.fake_api import STALL, TRICKLE, FakeAPI, Request, answer, http_response
from tests.support.keygen import (
    ACCEPTED_KINDS,
    GeneratedKey,
    KeyCorpus,
    blob_of,
    fingerprint,
    openssh_line,
    ssh_string,
)

SECRET = "gck_" + "C" * 43


def padded(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


@pytest.fixture
def configured(node: Node, fake: FakeAPI) -> Node:
    """A node whose user ubuntu is looked up on the fake API, with a 1 s timeout."""
    node.configure(fake.url, {"ubuntu": SECRET}, timeout="1")
    return node


def cache_from(node: Node, fake: FakeAPI, lines: list[str], etag: str | None = None) -> None:
    """Have one lookup answered with `lines`, so that the cache holds them."""
    headers = {"ETag": etag} if etag else None
    fake.respond = answer(
        http_response(200, "".join(f"{line}\n" for line in lines), headers=headers)
    )
    assert node.run("ubuntu").lines == lines


@pytest.mark.parametrize("behaviour", [STALL, TRICKLE])
def test_a_slow_api_cannot_stretch_the_timeout(
    configured: Node, fake: FakeAPI, behaviour: str
) -> None:
    """If the API stalls or trickles, then the command gives up at its timeout and prints nothing."""
    fake.respond = lambda _request: behaviour
    run = configured.run("ubuntu")
    assert run.seconds < 1.0 + 1.5, f"took {run.seconds:.2f}s with a 1s timeout"
    assert (run.returncode, run.stdout, run.outcome) == (1, "", "refused")
    assert "no answer within the timeout" in run.lookup["reason"]


def test_a_slow_api_falls_back_to_the_cache_in_time(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey
) -> None:
    """If the API stalls and the cache is fresh, then the cached lines come within the timeout."""
    cache_from(configured, fake, [laptop.public_line])
    fake.respond = lambda _request: STALL
    run = configured.run("ubuntu")
    assert run.seconds < 1.0 + 1.5
    assert (run.returncode, run.lines, run.outcome) == (0, [laptop.public_line], "cached")


def test_an_address_that_never_answers_cannot_stretch_the_timeout(node: Node) -> None:
    """If the API's address swallows packets (no refusal, no answer), then the timeout holds."""
    # 192.0.2.0/24 is reserved for documentation: nothing routes an answer back.
    node.configure("http://192.0.2.1:8000", {"ubuntu": SECRET}, timeout="1")
    run = node.run("ubuntu")
    assert run.seconds < 1.0 + 1.5
    assert (run.returncode, run.stdout) == (1, "")


GARBAGE = {
    "not HTTP": b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n",
    "nothing": b"",
    "an HTML page": http_response(200, "<html>login</html>\n", content_type="text/html"),
    "no content type": http_response(200, "x\n", content_type=None),
    "a body shorter than its length": http_response(200, "ssh-ed25519 AAAA\n")[:-5],
    "a length that is not a number": http_response(200, "x\n").replace(
        b"Content-Length: 2", b"Content-Length: 2x"
    ),
    "two lengths": http_response(200, "x\n").replace(
        b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 3"
    ),
    "an enormous length": http_response(200, "x\n").replace(
        b"Content-Length: 2", b"Content-Length: 999999999999"
    ),
    "malformed chunks": http_response(
        200, "zz\r\nx\r\n", length=False, headers={"Transfer-Encoding": "chunked"}
    ),
    "unfinished chunks": http_response(
        200, "2\r\nx\n", length=False, headers={"Transfer-Encoding": "chunked"}
    ),
    "a body that is not UTF-8": http_response(200, b"\xff\xfe\n"),
    "a server error": http_response(500, '{"message":"boom"}'),
    "unavailable": http_response(503, "", headers={"Retry-After": "1"}),
    "rate limited": http_response(429, "", headers={"Retry-After": "1"}),
    "a redirect": http_response(302, "", headers={"Location": "http://evil.example/keys"}),
    "a 304 to a request without If-None-Match": http_response(304, "", content_type=None),
    "a bad header": b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    "a control character in a header": b'HTTP/1.1 200 OK\r\nETag: "\x01"\r\n\r\n',
}


@pytest.mark.parametrize("garbage", GARBAGE, ids=str)
def test_garbage_is_no_answer(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey, garbage: str
) -> None:
    """If the API answers garbage, then it counts as unreachable: the cache, or nothing."""
    fake.respond = answer(GARBAGE[garbage])
    run = configured.run("ubuntu")
    assert (run.returncode, run.stdout, run.outcome) == (1, "", "refused"), run.stderr
    assert run.lookup["reason"].startswith("API unreachable")
    cache_from(configured, fake, [laptop.public_line])
    fake.respond = answer(GARBAGE[garbage])
    run = configured.run("ubuntu")
    assert (run.returncode, run.lines, run.outcome) == (0, [laptop.public_line], "cached")


def test_a_chunked_answer_is_read(configured: Node, fake: FakeAPI, laptop: GeneratedKey) -> None:
    """If the API sends its answer in chunks, then the lines are put together and served."""
    line = f"{laptop.public_line}\n".encode()
    body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, line[:10], len(line) - 10, line[10:])
    fake.respond = answer(
        http_response(200, body, length=False, headers={"Transfer-Encoding": "chunked"})
    )
    assert configured.run("ubuntu").lines == [laptop.public_line]


def test_an_answer_without_length_is_read_to_its_end(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey
) -> None:
    """If the API sends no length, then the body runs until the connection closes."""
    fake.respond = answer(http_response(200, f"{laptop.public_line}\n", length=False))
    assert configured.run("ubuntu").lines == [laptop.public_line]


def test_only_checked_lines_are_printed(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey, desktop: GeneratedKey
) -> None:
    """If the answer mixes good and bad lines, then only the good ones are printed, each drop said."""
    ed25519 = laptop.public_line
    key_type, blob_b64 = ed25519.split()[:2]
    ecdsa_blob_b64 = desktop.public_line.split()[1]
    expiring = f'expiry-time="20991231235959Z" {desktop.public_line}'
    p256 = blob_of(desktop.public_line)
    ecdsa_as_384 = ssh_string(b"ecdsa-sha2-nistp384") + p256[4 + len(b"ecdsa-sha2-nistp256") :]
    bad = {
        f'command="/bin/sh" {ed25519}': "an option other than expiry-time",
        f'from="10.0.0.1",expiry-time="20991231235959Z" {ed25519}': "an option other than expiry-time",
        f'expiry-time="20991231235959Z",command="x" {ed25519}': 'expiry-time is not "YYYYMMDDHHMMSSZ"',
        f'expiry-time="2099" {ed25519}': 'expiry-time is not "YYYYMMDDHHMMSSZ"',
        f'expiry-time="20991331235959Z" {ed25519}': 'expiry-time is not "YYYYMMDDHHMMSSZ"',
        f"cert-authority {ed25519}": "its key type cert-authority is not one the API accepts",
        f"ssh-ed25519-cert-v01@openssh.com {blob_b64}": "is not one the API accepts",
        f"ssh-dss {blob_b64}": "its key type ssh-dss is not one the API accepts",
        f"{key_type} {blob_b64[:-4]}": "its key is truncated",
        f"{key_type} {padded(blob_of(ed25519) + b'extra')}": "or has bytes after its end",
        f"{key_type} {padded(blob_of(ed25519)[:19] + b'x' * 31)}": "its key is truncated",
        f"{key_type} {padded(blob_of(ed25519)[:15] + ssh_string(b'x' * 31))}": "is not 32 bytes",
        f"ecdsa-sha2-nistp384 {padded(ecdsa_as_384)}": "its curve is not the one its type names",
        f"{key_type} {blob_b64}===": "its key is not base64",
        f"{key_type} {blob_b64.replace('A', '-', 1)}": "its key is not base64",
        f"{key_type} {ecdsa_blob_b64} liar": "the type inside its key is not the type in front of it",
        f"{key_type}": "its key is not base64",
        f"{key_type}  {blob_b64}": "its key is not base64",
        f"{key_type} {blob_b64} bell\x07": "it holds a control character",
        f"{key_type}\t{blob_b64}": "it holds a control character",
        f"{ed25519}\r": "it holds a control character",
        f"{key_type} AAAAC3NzaC1lZDI1NTE5": "its key is truncated, or has bytes after its end",
        "ssh-ed25519 " + "A" * 20_000: "longer than",
        "<html>": "its key type <html> is not one the API accepts",
    }
    body = "\n".join([*bad, ed25519, "", expiring]) + "\n" + desktop.public_line  # no final \n
    fake.respond = answer(http_response(200, body))
    run = configured.run("ubuntu")
    assert run.lines == [ed25519, expiring]
    for number, problem in enumerate(bad.values(), 1):
        assert f"dropped line {number} of the API's answer: " in run.stderr
        assert (
            problem
            in run.stderr.split(f"dropped line {number} of the API's answer: ")[1].split("\n")[0]
        )
    assert (
        "dropped the last line of the API's answer: it does not end with a line break" in run.stderr
    )


def test_expiry_time_lines_pass_unchanged_and_filter_by_their_key(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey, desktop: GeneratedKey, tmp_path: Path
) -> None:
    """If a line carries sshd's expiry-time, then it is printed as sent, for its key's fingerprint."""
    expiring = f'expiry-time="20991231235959Z" {laptop.public_line}'
    fake.respond = answer(http_response(200, f"{expiring}\n{desktop.public_line}\n"))
    key = fingerprint(tmp_path, laptop.public_text, "sha256")[1]
    assert configured.run("ubuntu", key).lines == [expiring]


def test_every_accepted_key_type_passes(
    configured: Node, fake: FakeAPI, key_corpus: KeyCorpus, tmp_path: Path
) -> None:
    """If the API sends a key of any type it accepts, then the command passes it on."""
    lines = [key_corpus.keys[kind].public_line for kind in ACCEPTED_KINDS]
    fake.respond = answer(http_response(200, "".join(f"{line}\n" for line in lines)))
    assert configured.run("ubuntu").lines == lines
    for kind in ACCEPTED_KINDS:  # and its fingerprint is ssh-keygen's
        key = key_corpus.keys[kind]
        assert configured.run(
            "ubuntu", fingerprint(tmp_path, key.public_text, "sha256")[1]
        ).lines == [key.public_line]


def test_a_304_reuses_the_cache_and_renews_it(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey
) -> None:
    """If the API answers 304 to the cached ETag, then the cached lines are served and renewed."""
    cache_from(configured, fake, [laptop.public_line], etag='"v1"')
    configured.age_cache(3000)

    def not_modified(request: Request) -> bytes:
        if request.headers.get("if-none-match") == '"v1"':
            return http_response(304, "", content_type=None, length=False)
        return http_response(200, "")

    fake.respond = not_modified
    run = configured.run("ubuntu")
    assert (run.returncode, run.lines, run.outcome) == (0, [laptop.public_line], "served")
    assert run.lookup["reason"] == "HTTP 304: the cached answer is current"
    assert fake.requests[-1].headers["if-none-match"] == '"v1"'
    (entry,) = configured.cache_files()
    assert time.time() - entry.stat().st_mtime < 60  # its age starts again


def test_a_new_etag_replaces_the_cached_answer(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey, desktop: GeneratedKey
) -> None:
    """If the answer changed (a 200 with a new ETag), then the new lines and tag are cached."""
    cache_from(configured, fake, [laptop.public_line], etag='"v1"')
    cache_from(configured, fake, [desktop.public_line], etag='W/"v2"')
    fake.respond = answer(http_response(304, "", content_type=None))
    assert configured.run("ubuntu").lines == [desktop.public_line]
    assert fake.requests[-1].headers["if-none-match"] == 'W/"v2"'


@pytest.mark.parametrize("etag", ['"a b"', "v1", '"a"b"', '"' + "x" * 300 + '"'])
def test_a_malformed_etag_is_never_sent_back(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey, etag: str
) -> None:
    """If the API sends a malformed ETag, then it is ignored, and no If-None-Match carries it."""
    raw = http_response(200, f"{laptop.public_line}\n").replace(
        b"\r\n\r\n", f"\r\nETag: {etag}\r\n\r\n".encode("latin-1"), 1
    )
    fake.respond = answer(raw)
    run = configured.run("ubuntu")
    assert run.lines == [laptop.public_line]
    configured.run("ubuntu")
    assert "if-none-match" not in fake.requests[-1].headers


def test_the_request_says_who_asks_and_nothing_more(configured: Node, fake: FakeAPI) -> None:
    """If the command asks the API, then it sends the credential, text/plain and no body."""
    configured.run("ubuntu")
    (request,) = fake.requests
    assert request.target == "/gpu-cloud/ssh-keys/authorized_keys"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["accept"] == "text/plain"
    assert request.headers["host"] == f"127.0.0.1:{fake.port}"
    assert "content-length" not in request.headers


def test_a_url_path_prefix_is_kept(node: Node, fake: FakeAPI) -> None:
    """If the API is behind a path prefix, then the endpoint is asked under it."""
    node.configure(f"{fake.url}/api/", {"ubuntu": SECRET})
    node.run("ubuntu")
    assert fake.requests[0].target == "/api/gpu-cloud/ssh-keys/authorized_keys"


def test_an_untrusted_certificate_gets_no_lines(
    node: Node, fake: FakeAPI, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If the API's TLS certificate is not trusted, then the answer is never read."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    fake.tls = context
    fake.respond = answer(http_response(200, f"{laptop.public_line}\n"))
    node.configure(f"https://127.0.0.1:{fake.port}", {"ubuntu": SECRET}, timeout="2")
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (1, "")
    assert (
        "certificate verify failed" in run.lookup["reason"].lower()
        or "CERTIFICATE_VERIFY_FAILED" in run.lookup["reason"]
    )


def test_lines_are_not_cut_into_pieces(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey
) -> None:
    """If the answer is large, then stdout still holds every line whole, in one piece."""
    blob = blob_of(laptop.public_line)
    lines = [openssh_line("ssh-ed25519", blob, f"copy-{n:05d}-{'x' * 200}") for n in range(3000)]
    fake.respond = answer(http_response(200, "".join(f"{line}\n" for line in lines)))
    assert configured.run("ubuntu").lines == lines


def test_a_crash_at_any_moment_never_leaves_half_an_entry(
    configured: Node, fake: FakeAPI, laptop: GeneratedKey
) -> None:
    """If the command is killed at any moment, then a later lookup finds one whole answer or none."""
    blob = blob_of(laptop.public_line)
    answers = [
        [openssh_line("ssh-ed25519", blob, f"{name}-{n:04d}-{'x' * 200}") for n in range(2000)]
        for name in ("old", "new")
    ]
    live = configured.config.read_text()
    configured.cut_off()
    dead = configured.config.read_text()
    random = Random(0)
    for attempt in range(30):
        lines = answers[attempt % 2]
        fake.respond = answer(http_response(200, "".join(f"{line}\n" for line in lines)))
        configured.write_config(live)
        process = subprocess.Popen(
            [str(COMMAND), "--config", str(configured.config), "ubuntu"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=BARE_ENVIRONMENT,
        )
        time.sleep(random.uniform(0.0, 0.25))
        process.kill()
        process.wait()
        configured.write_config(dead)
        run = configured.run("ubuntu")  # the API unreachable: only the cache can answer
        assert run.lines in ([], *answers), f"attempt {attempt}: {len(run.lines)} lines"
