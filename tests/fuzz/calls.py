"""What a caller sends the fuzzed proxy, as bytes, and what a correct proxy makes of it.

Requests are built byte by byte (aiohttp's client would normalise away the interesting cases):
each `Call` knows the request an upstream must receive, whether it is a command, and which
defects (RFC 9112) let the HTTP server layer refuse it. The fuzzed proxy's config is here too
(routes, zones, secrets), so the oracle and the config cannot drift apart.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httptools
import orjson
from hypothesis import strategies as st
from yarl import URL

MAX_BODY = 4096  # the fuzzed proxy's [proxy] max_body: small, so bodies over it are cheap
ADMIN_TOKEN = "fuzz-admin-token-5b1e0c"
HEADER_SECRET = "fuzz-upstream-key-9c3a41"   # [targets.*.headers] X-Upstream-Key
DSN_PASSWORD = "fuzz-dsn-password-77d0e2"    # [store] url and [targets.legacy] state
SECRETS = (ADMIN_TOKEN, HEADER_SECRET, DSN_PASSWORD)
LEGACY_ONLY_ZONE = "sea"  # [routing] zones: sea runs legacy only, its commands are not mirrored

# The oracle's own list (RFC 9110 §7.6.1 and RFC 7230 §6.1's): never forwarded, nor any field Connection names.
HOP_BY_HOP = frozenset({b"connection", b"proxy-connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"proxy-authenticate", b"proxy-authorization"})
# Fields that are not lists, as the server layer (aiohttp) enforces: one line each (RFC 9110 §5.3).
SINGLETONS = frozenset({b"content-length", b"content-location", b"content-range", b"content-type", b"etag", b"host",
                        b"max-forwards", b"server", b"transfer-encoding", b"user-agent"})
# Set anew for each hop: Host and the framing.
PER_HOP = frozenset({b"host", b"content-length"})


@dataclass(frozen=True)
class Route:
    """A command route of the fuzzed proxy's config, and the regular expression its path means."""

    command: str
    method: str
    path: str
    keys: tuple[str, ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[a-z_]+\})", self.path)
        return re.compile("".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts),
                          re.DOTALL)


ROUTES = (Route("assign_load", "POST", "/loads/{load_id}/assign", ("load_id",)),
          Route("set_driver", "PUT", "/zones/{zone}/drivers/{driver_id}", ("driver_id",)),
          Route("cancel_load", "DELETE", "/loads/{load_id}", ("load_id",)))
READ_BACK = "GET /loads/{load_id}"  # assign_load's read-back: the proxy's own GET, carrying X-Upstream-Key


def routes_toml() -> str:
    """The [[routes]] of the fuzzed proxy's config."""
    blocks = []
    for route in ROUTES:
        keys = ", ".join(f'"{k}"' for k in route.keys)
        read = f'read = "{READ_BACK}"\n' if route.command == "assign_load" else ""
        blocks.append(f'[[routes]]\nmatch = "{route.method} {route.path}"\ncommand = "{route.command}"\n'
                      f'keys = [{keys}]\n{read}')
    return "\n".join(blocks)


@dataclass
class Call:
    """One request on the wire, and what a correct proxy makes of it."""

    method: str
    target: str                                # the request-target as sent
    version: str
    headers: list[tuple[bytes, bytes]]         # as sent, framing fields included
    body: bytes                                # the content (de-chunked)
    wire: bytes
    pieces: tuple[int, ...] = ()               # offsets where the caller pauses while sending
    declared: int | None = None                # a Content-Length larger than what is sent
    defects: frozenset[str] = frozenset()      # why the HTTP server layer may refuse it
    hang_up: int | None = None                 # the caller closes the connection after this many bytes

    @classmethod
    def of(cls, wire: bytes, *, pieces: tuple[int, ...] = (), hang_up: int | None = None) -> "Call":
        """A well-formed request written out by hand (an explicit example)."""
        head, _, _ = wire.partition(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ")
        headers = [(n, v) for n, _, v in (f.partition(b":") for f in fields)]
        body: list[bytes] = []

        class Body:
            def on_body(self, data: bytes) -> None:
                body.append(data)

        httptools.HttpRequestParser(Body()).feed_data(wire)
        return cls(method, target, version, headers, b"".join(body), wire, pieces, hang_up=hang_up)

    @property
    def origin(self) -> str:
        """The target an upstream must receive: as sent, in origin-form."""
        return self.target.removeprefix("http://fuzz.example")

    @property
    def path(self) -> str:
        """The path the route table sees (percent-decoded, as the server's URL parser decodes it)."""
        return URL.build(path=self.origin.split("#", 1)[0].split("?", 1)[0], encoded=True).path

    def command(self) -> tuple[Route, dict[str, str], object] | None:
        """The command route it is (with its path parameters and its zone), or None."""
        for route in ROUTES:
            if route.method == self.method:
                found = route.pattern.fullmatch(self.path)
                if found is not None:
                    params = found.groupdict()
                    fields = self.json if isinstance(self.json, dict) else {}
                    return route, params, params.get("zone", fields.get("zone"))
        return None

    @property
    def json(self) -> object:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def mirrored(self) -> bool:
        """A command outside the legacy-only zone (every route samples all)."""
        command = self.command()
        if command is None:
            return False
        zone = command[2]
        return zone is None or str(zone).lower().casefold() != LEGACY_ONLY_ZONE

    def first(self, name: bytes) -> bytes | None:
        return next((v.strip(b" \t") for n, v in self.headers if n.lower() == name), None)

    def forwarded(self) -> list[tuple[bytes, bytes]]:
        """The caller's fields an upstream must receive: all but hop-by-hop, per-hop and those Connection names."""
        named = {token.strip().lower() for n, v in self.headers if n.lower() == b"connection" for token in v.split(b",")}
        return [(n.lower(), v.strip(b" \t")) for n, v in self.headers
                if n.lower() not in HOP_BY_HOP | PER_HOP | named and n.lower() != b"transfer-encoding"]

    @property
    def to_the_proxy(self) -> bool:
        """CONNECT (a tunnel) or an asterisk-form target: a request about the proxy itself, never forwarded; the
        server layer answers it (404 when no route takes it)."""
        return self.method == "CONNECT" or not (self.target.startswith("/") or self.target.startswith("http://"))

    @property
    def odd_expect(self) -> bool:
        """An Expect field whose value is not UTF-8."""
        return any(n.lower() == b"expect" and not utf8(v) for n, v in self.headers)

    @property
    def over_limit(self) -> bool:
        return len(self.body) > MAX_BODY or (self.declared or 0) > MAX_BODY


TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
VCHAR = bytes(range(0x21, 0x7F))
OBS_TEXT = bytes(range(0x80, 0x100))
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Valid tokens the server's parser (llhttp) may not know: a 400 from the server layer is legitimate for these.
ODD_METHODS = ("get", "Post", "post", "PURGE", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "SEARCH", "REPORT",
               "M-SEARCH", "NOTIFY", "LINK", "QUERY", "TRACE", "CONNECT", "SOURCE", "PRI")
NAMES = ("Accept", "Accept-Encoding", "Authorization", "Cache-Control", "Connection", "Content-Encoding",
         "Content-Type", "Cookie", "Expect", "Forwarded", "Keep-Alive", "Origin", "Proxy-Authorization",
         "Proxy-Connection", "TE", "Trailer", "Upgrade", "User-Agent", "Via", "X-Dispatch-Token", "X-Forwarded-For",
         "X-Request-Id", "X-Shadow", "X-Upstream-Key")
VALUES = {
    "Connection": (b"close", b"keep-alive", b"Upgrade", b"X-Request-Id", b"x-request-id, Via", b"Cookie,  TE",
                   b"CLOSE", b", ,", b"Keep-Alive, X-Shadow"),
    "Expect": (b"100-continue", b"100-Continue", b"something-else"),
    "TE": (b"trailers", b"gzip", b"trailers, deflate;q=0.5"),
    "Upgrade": (b"websocket", b"h2c", b"TLS/1.0"),
    "Content-Type": (b"application/json", b"text/plain; charset=iso-8859-1", b"application/octet-stream"),
    "Content-Encoding": (b"gzip", b"identity"),
    "X-Shadow": (b"1", b"0"),
    "X-Dispatch-Token": (b"tok-1", b"", b"tok-\xe9\xff", "tok-é".encode(), b"a" * 200),
}
ZONES = st.one_of(st.sampled_from(["chi", "CHI", "sea", "SEA", "Sea", "nyc", "", "\u017fea"]),
                  st.integers(-5, 5), st.none(), st.booleans(), st.text(max_size=4))
_INNER = VCHAR + b" \t"
FIELD_VALUES = st.one_of(
    st.binary(max_size=40).map(lambda b: bytes(_INNER[x % len(_INNER)] for x in b).strip(b" \t")),
    st.binary(min_size=1, max_size=12).map(lambda b: bytes(OBS_TEXT[x % 128] for x in b)),  # obs-text, not UTF-8
    st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12).map(lambda t: t.encode().strip(b" \t")),
    st.just(b""),
    st.sampled_from(SECRETS).map(lambda s: b"Bearer " + s.encode()),
    st.integers(100, 3000).map(lambda n: b"v" * n),
)
FIELD_NAMES = st.one_of(st.sampled_from(NAMES), st.text(TCHAR, min_size=1, max_size=20)
                        .filter(lambda n: n.lower() not in ("host", "content-length", "transfer-encoding")))


def pick(draw: st.DrawFn, options: tuple | list) -> Any:
    """One of the options (an index drawn: cheaper than a sampled_from built per draw)."""
    return options[draw(st.integers(0, len(options) - 1))]


@st.composite
def headers_of(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Well-formed fields: known and random names, odd values, duplicates, Connection naming others."""
    fields: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(0, 8))):
        name = pick(draw, (str, str.lower, str.upper))(draw(FIELD_NAMES))
        special = VALUES.get(name.title() if name.upper() != "TE" else "TE")
        value = pick(draw, special) if special and draw(st.booleans()) else draw(FIELD_VALUES)
        fields.append((name.encode(), pick(draw, (b"", b" ", b"\t", b"  ")) + value + pick(draw, (b"", b" ", b"\t"))))
        if draw(st.integers(0, 5)) == 0:
            fields.append(fields[-1])  # the same field twice
    if fields and draw(st.integers(0, 3)) == 0:  # one more Connection field, naming some of the others
        named = [pick(draw, fields)[0] for _ in range(draw(st.integers(1, 3)))]
        fields.insert(draw(st.integers(0, len(fields))), (b"Connection", b" " + b", ".join(named)))
    return fields


def utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def repeated_singleton(headers: list[tuple[bytes, bytes]]) -> bool:
    """A field that is not a list (RFC 9110 §5.3) sent twice: the server layer may refuse it."""
    names = [n.lower() for n, _ in headers]
    return any(names.count(n) > 1 for n in SINGLETONS)


SEGMENTS = st.one_of(
    st.integers(0, 999_999).map(lambda n: f"L-{n}"),
    st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@", min_size=1, max_size=12),
    st.binary(min_size=1, max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b)),  # any byte: %2F, %0A, %00
    st.text(min_size=1, max_size=4).map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["%2F", "%0D%0A", "%00", "%25", "%3F", "%23", "..", ".", "%2e%2e", "a%2Fb", "%e9", "%C3%A9"]),
)
NEAR_MISSES = ("/LOADS/{}/assign", "/loads/{}/assign/", "/loads/{}/assign/more", "//loads/{}/assign", "/loads/{}/ASSIGN",
               "/loads/{};v=1/assign", "/loads//assign", "/zones/{}/drivers", "/loads/{}")
OTHER_PATHS = st.one_of(st.lists(SEGMENTS, max_size=4).map(lambda s: "/" + "/".join(s)),
                        st.sampled_from(["/", "/health", "/-/health", "/-/metrics", "/-/admin/status", "/-/admin/reload",
                                         "/-/nothing", "/-"]))
QUERIES = st.lists(st.tuples(SEGMENTS, SEGMENTS), max_size=3).map(lambda p: "?" + "&".join(f"{k}={v}" for k, v in p))


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, object]:
    """An origin-form (sometimes absolute-form) target, often a command route's path; and a zone for the body."""
    zone = draw(ZONES)
    kind = draw(st.integers(0, 9))
    if kind < 5:     # a command route's path (a command when the method matches)
        values = {"load_id": draw(SEGMENTS), "driver_id": draw(SEGMENTS), "zone": quote(str(zone), safe="") or "x"}
        path = pick(draw, ROUTES).path.format(**values)
    elif kind < 7:   # near misses: case, trailing slash, extra segment, double slash, matrix parameter
        path = pick(draw, NEAR_MISSES).replace("{}", draw(SEGMENTS))
    elif kind < 9:   # anything else, and the proxy's own endpoints
        path = draw(OTHER_PATHS)
    else:
        path = "/" + draw(SEGMENTS)
    if draw(st.booleans()):
        path += draw(QUERIES)
    if draw(st.integers(0, 9)) == 0:
        path = "http://fuzz.example" + path  # absolute-form
    return path, zone


JSON_FIELDS = st.dictionaries(st.sampled_from(["load_id", "driver_id", "note", "eta", "stops"]),
                              st.one_of(st.text(max_size=8), st.integers(-2**63, 2**63 - 1),
                                        st.floats(allow_nan=False, allow_infinity=False),
                                        st.lists(st.integers(0, 99), max_size=3)), max_size=3)


def _json_body(draw: st.DrawFn, zone: object) -> bytes:
    document: dict[str, object] = {"zone": zone} if draw(st.integers(0, 4)) else {}
    return orjson.dumps({**document, **draw(JSON_FIELDS)})


@st.composite
def bodies(draw: st.DrawFn, zone: object) -> bytes:
    """Empty, JSON, JSON-ish, binary, invalid UTF-8, and sizes around and over max_body."""
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return b""
    if kind < 5:
        return _json_body(draw, zone)
    if kind == 5:  # JSON-ish: cut short, a trailing comma, a lone surrogate escape, deep nesting
        text = _json_body(draw, zone)
        return pick(draw, (text[: max(1, len(text) // 2)], text[:-1] + b",}", b'{"zone": "\\ud800"}',
                           b"[" * 2000 + b"]" * 2000, b"NaN", b'{"zone": 1e999}'))
    if kind == 6:
        return draw(st.binary(min_size=1, max_size=300))
    if kind == 7:
        return draw(st.text(min_size=1, max_size=60)).encode("utf-8", "surrogatepass")  # may hold lone surrogates
    if kind == 8:
        return draw(st.binary(min_size=1, max_size=40).map(lambda b: bytes(OBS_TEXT[x % 128] for x in b)))
    size = draw(st.integers(MAX_BODY - 2, MAX_BODY + 2) if draw(st.booleans()) else st.integers(MAX_BODY // 2, MAX_BODY * 3))
    filler = pick(draw, (_json_body(draw, zone) + b" " * size, bytes(range(256)) * (size // 256 + 1),
                         b"GET /smuggled HTTP/1.1\r\nHost: fuzz.example\r\n\r\n" * (size // 40 + 1)))  # a request inside
    return filler[:size]


def chunked(draw: st.DrawFn, body: bytes) -> bytes:
    """The body in chunks: any split, hex in either case, zero-padded sizes, extensions, trailers."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=4)))) if len(body) > 1 else []
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)] if body else []
    out = []
    for part in parts:
        size = pick(draw, ("{:x}", "{:X}", "0{:x}")).format(len(part))
        ext = pick(draw, ("", ";a=b", ";name", ';q="x y"'))
        out.append(f"{size}{ext}\r\n".encode() + part + b"\r\n")
    out.append(b"0" + pick(draw, (b"", b";last")) + b"\r\n")
    for _ in range(draw(st.integers(0, 2))):  # trailers
        name = pick(draw, (b"X-Trailer", b"X-Checksum", b"Expires", b"X-Upstream-Key"))
        out.append(name + b": " + draw(FIELD_VALUES) + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def render(method: str, target: str, version: str, headers: list[tuple[bytes, bytes]], payload: bytes,
           eol: bytes = b"\r\n") -> bytes:
    """A request on the wire."""
    lines = [f"{method} {target} {version}".encode("latin-1", "surrogateescape")]
    lines += [name + b":" + value for name, value in headers]
    return eol.join(lines) + eol + eol + payload


@st.composite
def requests(draw: st.DrawFn) -> Call:
    """A well-formed HTTP/1.x request (RFC 9112) that the proxy must pass on whole, or answer 413 when too large."""
    method = pick(draw, STANDARD_METHODS + ("POST", "PUT", "DELETE") * 2)
    target, zone = draw(targets())
    version = pick(draw, ("HTTP/1.1",) * 4 + ("HTTP/1.0",))
    headers = draw(headers_of())
    if draw(st.integers(0, 9)):
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b"fuzz.example"))
    elif version == "HTTP/1.1":
        headers.insert(0, (b"Host", b"fuzz.example:8080"))
    body = draw(bodies(zone))
    defects = {"singleton"} if repeated_singleton(headers) else set()
    framing = pick(draw, ("length", "chunked") if version == "HTTP/1.1" else ("length",))
    declared = None
    if framing == "chunked":
        headers.append((b"Transfer-Encoding", pick(draw, (b" chunked", b" Chunked", b"chunked"))))
        payload = chunked(draw, body)
    elif body or method in ("POST", "PUT", "PATCH") or draw(st.booleans()):
        headers.append((b"Content-Length", b" %d" % len(body)))
        payload = body
        if len(body) > MAX_BODY and draw(st.integers(0, 3)) == 0:
            declared = pick(draw, (len(body), 10**12))  # declared, but the caller sends only a part
            headers[-1] = (b"Content-Length", b" %d" % declared)
            payload = body[:100]
    else:
        payload = b""
    wire = render(method, target, version, headers, payload)
    pieces = tuple(sorted(set(draw(st.lists(st.integers(1, len(wire) - 1), max_size=3))))) \
        if draw(st.integers(0, 3)) == 0 else ()
    return Call(method, target, version, headers, body, wire, pieces, declared, frozenset(defects))


METHOD_TOKENS = st.one_of(st.sampled_from(ODD_METHODS), st.text(TCHAR, min_size=1, max_size=10))
# Defects of a request (RFC 9112) that let the server layer refuse it with a 400.
DEFECTS = ("method", "version", "target", "no-host", "two-hosts", "obs-fold", "ctl", "name", "long", "te-cl",
           "two-lengths", "bad-length", "te-other", "te-http10", "bad-chunk", "bare-lf")


@st.composite
def malformed_requests(draw: st.DrawFn) -> Call:
    """A request with one or two defects (RFC 9112): the server layer may refuse it (400), else it is passed on."""
    call = draw(requests())
    chosen = draw(st.lists(st.sampled_from(DEFECTS), min_size=1, max_size=2, unique=True))
    method, target, version, headers = call.method, call.target, call.version, list(call.headers)
    body = call.body
    framing_te = any(n.lower() == b"transfer-encoding" for n, _ in headers)
    eol = b"\r\n"
    payload = call.wire.split(b"\r\n\r\n", 1)[1]
    for defect in chosen:
        if defect == "method":
            method = draw(METHOD_TOKENS)
        elif defect == "version":
            version = pick(draw, ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1.10", "HTTP/1", "HTTX/1.1"])
        elif defect == "target":
            target = pick(draw, [target + " x", target + "\xe9", target + "\x00", target + "%ZZ",
                                           target + "%", target + "#frag", "*", target.lstrip("/") or "x",
                                           target + "\t", "/" + "a" * 9000])
        elif defect == "no-host":
            headers = [(n, v) for n, v in headers if n.lower() != b"host"]
        elif defect == "two-hosts":
            headers.insert(0, (b"Host", b" other.example"))
            headers.insert(0, (b"Host", b" fuzz.example"))
        elif defect == "obs-fold":
            headers.insert(0, (b"X-Folded", b" first" + eol + pick(draw, [b" ", b"\t"]) + b"second"))
        elif defect == "ctl":
            ctl = pick(draw, [b"\x00", b"\x01", b"\x1b", b"\x7f", b"\r", b"\x0b"])
            headers.insert(0, (b"X-Control", b" a" + ctl + b"b"))
        elif defect == "name":
            name = pick(draw, [b"X Space", b"X@at", b"", b"X-\xe9", b"X-Colon ", b"\tX-Tab", b"X(\"q\")"])
            headers.insert(0, (name, b" value"))
        elif defect == "long":
            headers.insert(0, (b"X-Long", b" " + b"v" * draw(st.integers(8200, 20000))))
        elif defect == "te-cl":
            if framing_te:
                headers.append((b"Content-Length", b" %d" % len(payload)))
            else:
                headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
                payload = chunked(draw, body)
                headers += [(b"Content-Length", b" %d" % len(payload)), (b"Transfer-Encoding", b" chunked")]
        elif defect == "two-lengths":  # a second Content-Length, the same or not (the first one the real one)
            if not any(n.lower() == b"content-length" for n, _ in headers):
                headers.append((b"Content-Length", b" %d" % len(payload)))
            headers.append((b"Content-Length", b" %d" % pick(draw, [len(payload), len(payload) + 1, 0])))
        elif defect == "bad-length":
            headers = [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")]
            headers.append((b"Content-Length", b" " + pick(draw, [b"+5", b"-1", b"5 5", b"0x5", b"", b"1e3",
                                                                         b"99999999999999999999999"])))
        elif defect == "te-other":
            headers = [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")]
            headers.append((b"Transfer-Encoding", b" " + pick(draw, [b"gzip, chunked", b"chunked, gzip",
                                                                            b"identity", b"chunked, chunked",
                                                                            b"chunked ;x", b"xchunked"])))
            payload = chunked(draw, body)
        elif defect == "te-http10":
            version = "HTTP/1.0"
            headers = [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")]
            headers.append((b"Transfer-Encoding", b" chunked"))
            payload = chunked(draw, body)
        elif defect == "bad-chunk":
            headers = [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")]
            headers.append((b"Transfer-Encoding", b" chunked"))
            payload = pick(draw, [b"zz\r\nab\r\n0\r\n\r\n", b"3\r\nabcd\r\n0\r\n\r\n",
                                            b"-1\r\n\r\n", b"3\nabc\n0\n\n", b"ffffffffffffffffff\r\nab\r\n0\r\n\r\n",
                                            b"3\r\nabc\r\n0\r\nBad Trailer\r\n\r\n"])
        elif defect == "bare-lf":
            eol = b"\n"
    wire = render(method, target, version, headers, payload, eol)
    # Pauses only in the header section when the body's framing is broken: aiohttp never fails a body stream it
    # has handed to the application, so a bad chunk after a pause leaves the caller waiting (its timeout ends it).
    framing = {"te-cl", "two-lengths", "bad-length", "te-other", "te-http10", "bad-chunk"} & set(chosen)
    last = (wire.find(eol + eol) if framing else len(wire) - 1)
    pieces = tuple(sorted(set(draw(st.lists(st.integers(1, max(1, last)), max_size=3))))) \
        if draw(st.integers(0, 3)) == 0 and last > 1 else ()
    # A PRI request line with no field after it is, to llhttp, the start of HTTP/2's connection preface
    # ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"): the server layer waits for the rest, and answers (400) only when more
    # bytes come. For the caller it is a request never finished: it sends it all and hangs up, unanswered.
    preface = method == "PRI" and wire.find(eol + eol) == wire.find(eol)
    return Call(method, target, version, headers, body, wire, pieces, call.declared, frozenset(chosen) | call.defects,
                hang_up=len(wire) if preface else None)


@st.composite
def hang_ups(draw: st.DrawFn) -> Call:
    """A request the caller stops sending part way (in the header section or the body), then hangs up."""
    call = draw(st.one_of(requests(), malformed_requests()))
    call.hang_up = draw(st.integers(1, len(call.wire) - 1))
    call.pieces = tuple(p for p in call.pieces if p < call.hang_up)
    return call
