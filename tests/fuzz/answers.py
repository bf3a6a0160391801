"""What an upstream answers the fuzzed proxy, as bytes, and what its caller must receive of it."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from tests.fuzz.calls import FIELD_VALUES, HOP_BY_HOP, PER_HOP, TCHAR, VCHAR, chunked, pick


@dataclass(frozen=True)
class Answer:
    """What an upstream answers: an HTTP answer (`http`), one HTTP does not allow (`lenient`), bytes that are
    not HTTP (`garbage`), or nothing: the connection closed (`close`)."""

    kind: str = "http"
    status: int = 200
    status_line: bytes = b"HTTP/1.1 200 OK"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    framing: str = "length"  # length | chunked | eof
    body: bytes = b""
    interim: bytes = b""     # 1xx answers sent before this one
    garbage: bytes = b""     # garbage: all it sends; lenient: an answer nobody asked for, sent right after
    chunks: bytes = b""      # the chunked body, as sent

    def render(self, head: bool, expect_continue: bool) -> tuple[bytes, bool]:
        """The bytes to send, and whether the connection closes after them."""
        if self.kind == "close":
            return b"", True
        if self.kind == "garbage":
            return self.garbage, True
        bodiless = head or self.status in (204, 304) or self.status < 200
        lines = [self.status_line, *(n + b": " + v for n, v in self.headers)]
        payload = b""
        if self.framing == "length":
            lines.append(b"Content-Length: %d" % len(self.body))
            payload = b"" if bodiless else self.body
        elif self.framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked")
            payload = b"" if bodiless else self.chunks
        else:
            payload = b"" if bodiless else self.body
        interim = (b"HTTP/1.1 100 Continue\r\n\r\n" if expect_continue else b"") + self.interim
        stale = self.garbage if self.kind == "lenient" else b""
        return interim + b"\r\n".join(lines) + b"\r\n\r\n" + payload + stale, self.framing == "eof" and not bodiless

    @property
    def reaches_caller(self) -> bool:
        """An answer the caller must receive exactly (anything else: the proxy's 502 is legitimate)."""
        return self.kind == "http"

    def expected_headers(self) -> list[tuple[bytes, bytes]]:
        """The fields the caller must receive: all but hop-by-hop, per-hop, and those Connection names."""
        named = {t.strip().lower() for n, v in self.headers if n.lower() == b"connection" for t in v.split(b",")}
        return [(n.lower(), transcoded(v)) for n, v in self.headers if n.lower() not in HOP_BY_HOP | PER_HOP | named]


def transcoded(value: bytes) -> bytes:
    """A field value as the caller receives it: byte for byte when it is UTF-8; else (obs-text) read as
    ISO-8859-1 and sent in UTF-8 — the server layer (aiohttp) writes header values as UTF-8 text."""
    try:
        value.decode("utf-8")
        return value
    except UnicodeDecodeError:
        return value.decode("latin-1").encode("utf-8")


RESPONSE_NAMES = ("Content-Type", "Set-Cookie", "Cache-Control", "Location", "Date", "Server", "Via", "ETag",
                  "Content-Encoding", "X-Upstream", "Connection", "Keep-Alive", "Proxy-Authenticate", "Trailer",
                  "Upgrade", "Vary", "WWW-Authenticate", "Content-Disposition", "X-Request-Id")


RESPONSE_FIELD_NAMES = st.one_of(st.sampled_from(RESPONSE_NAMES), st.text(TCHAR, min_size=1, max_size=16)
                                 .filter(lambda n: n.lower() not in ("host", "content-length", "transfer-encoding")))
STATUSES = st.one_of(st.sampled_from([200, 201, 202, 204, 301, 302, 304, 400, 401, 404, 407, 409, 413, 422, 500, 502, 503,
                                      504]), st.integers(200, 599))
REASONS = st.one_of(st.sampled_from([b"OK", b"", b"Whatever You Like", b"r\xe9ussi", "准".encode()]),
                    st.binary(max_size=20).map(lambda b: bytes(VCHAR[x % len(VCHAR)] for x in b)))
BODIES = st.one_of(st.just(b""), st.binary(max_size=200), st.integers(0, 200_000).map(lambda n: b"b" * n))


@st.composite
def answers(draw: st.DrawFn, kinds: tuple[str, ...] = ("http",)) -> Answer:
    """An upstream's answer: any status, reason, fields (hop-by-hop ones and Connection naming others
    included), framing (length, chunked with extensions and trailers, until close), body; 1xx first."""
    kind = pick(draw, kinds)
    if kind == "close":
        return Answer("close")
    if kind == "garbage":
        return Answer("garbage", garbage=b"\x00" + draw(st.binary(max_size=60)))
    status = draw(STATUSES)
    reason = draw(REASONS)
    version = pick(draw, [b"HTTP/1.1"] * 4 + [b"HTTP/1.0"])
    headers = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(RESPONSE_FIELD_NAMES)
        if name == "Connection":
            value = pick(draw, [b"close", b"keep-alive", b"X-Upstream", b"x-upstream, Vary", b"Set-Cookie"])
        else:
            value = draw(FIELD_VALUES)
        headers.append((name.encode(), value))
        if draw(st.integers(0, 5)) == 0:
            headers.append(headers[-1])
    if headers and draw(st.integers(0, 3)) == 0:  # one more Connection field, naming some of the others
        named = [pick(draw, headers)[0] for _ in range(draw(st.integers(1, 3)))]
        headers.insert(draw(st.integers(0, len(headers))), (b"Connection", b", ".join(named)))
    framing = pick(draw, ["length", "length", "chunked", "eof"])
    body = draw(BODIES)
    interim = b""
    if draw(st.integers(0, 5)) == 0:
        interim = pick(draw, [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n",
                                        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"])
    chunks = chunked(draw, body) if framing == "chunked" else b""
    status_line = version + b" %d " % status + reason
    if kind == "lenient":  # not HTTP, strictly: the proxy may answer 502, or pass on what its parser made of it
        status_line, headers, interim = pick(draw, [
            (version + b" %d" % status, headers, interim),                           # no SP, no reason
            (status_line, [*headers, (b"X-Control", b"a\x01b")], interim),
            (status_line, [*headers, (b"X-Folded", b"a\r\n b")], interim),
            (status_line, [*headers, (b"Content-Length", b"1"), (b"Content-Length", b"2")], interim),
            (status_line, headers, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
            (version + b" 99 Low", headers, interim),
            (version + b" 1000 High", headers, interim),
            (status_line, [*headers, (b"Content-Length", b"0")], interim),                # a body it did not announce
        ])
        if draw(st.booleans()):  # and an answer nobody asked for, right after this one
            return Answer(kind, status, status_line, tuple(headers), framing, body, interim, chunks=chunks,
                          garbage=b"HTTP/1.1 299 Stale\r\nContent-Length: 5\r\n\r\nstale")
    return Answer(kind, status, status_line, tuple(headers), framing, body, interim, chunks=chunks)
