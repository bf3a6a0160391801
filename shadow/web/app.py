"""The triage page: an aiohttp app over the quirk catalogue, server-rendered from Jinja2 templates.

A second front end over the functions `shadow quirks triage` and `shadow rules test` call
(`rules.triage`); the handlers here only read the request, check who may do what, run one of those
functions in a worker thread, and render. Pages are readable by anyone who can reach the port; deciding
needs a signed-in session (see `shadow.web.session`) and the form's CSRF token.

What the browser is allowed to do is spelled out in every response's headers: scripts and styles only from
this server (no inline script anywhere), no frames, forms post only here, nothing else fetched.
"""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import ChoiceLoader, Environment, PackageLoader

from reports.html import environment as report_environment
from rules.catalogue import VERDICTS, Catalogue
from rules.triage import preview_rule_text, save_rule_text, triage
from shadow.errors import ConfigError, InputError, ShadowError, StoreError
from shadow.secrets import redact
from shadow.web import pages
from shadow.web.session import (SESSION_COOKIE, VISIT_COOKIE, Session, Sessions, SignInThrottle, Visits,
                                token_matches)

__all__ = ["create_app", "CSP", "SITE"]

log = logging.getLogger("shadow.web")
SITE = web.AppKey("site", "TriageSite")
# Per-request values (aiohttp ≥ 3.14 wants typed keys; plain strings before it).
_KEY = getattr(web, "RequestKey", None)
SESSION: Any = _KEY("session", object) if _KEY else "session"
SINCE: Any = _KEY("since", object) if _KEY else "since"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}
_STATIC = {"triage.css": ("shadow.web", "static/triage.css", "text/css"),
           "triage.js": ("shadow.web", "static/triage.js", "text/javascript"),
           "report.css": ("reports", "templates/report.css", "text/css")}
_TICKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._#/:-]{0,63}$")
_MAX_BULK = 200
_MAX_RULE = 100_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """A request the page answers with an explanation instead of doing it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _local(target: str | None, default: str = "/") -> str:
    """A redirect target on this site only (a path, never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


def _field(form: Any, name: str, *, limit: int, required: str | None = None) -> str | None:
    value = str(form.get(name) or "").strip()
    if len(value) > limit:
        raise Refused(400, f"{name} is longer than {limit} characters")
    if not value and required:
        raise Refused(400, required)
    return value or None


class TriageSite:
    """The app's state: the catalogue, the rules folder, sessions and the templates."""

    def __init__(self, catalogue: Catalogue, rules_folder: Path, *, token: str | None, session_hours: float) -> None:
        self.catalogue = catalogue
        self.rules_folder = rules_folder
        self.token = token or None
        self.sessions = Sessions(session_hours * 3600)
        self.throttle = SignInThrottle()
        self.writing = asyncio.Lock()  # one decision at a time: rule files and the audit chain
        env = report_environment()
        env.loader = ChoiceLoader([PackageLoader("shadow.web", "templates"), env.loader])  # type: ignore[list-item]
        env.globals.update(verdict_words={"open": "open (undecided)", "reproduce": "reproduce: the new engine must "
                                          "behave like legacy", "retire": "retire: the difference is expected",
                                          "noise": "noise: not deterministic, ignore"})
        self.env: Environment = env
        self.static = {name: (resources.files(package).joinpath(path).read_bytes(), kind)
                       for name, (package, path, kind) in _STATIC.items()}

    # -- rendering ----------------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
        """A page, every secret masked (a last line of defence: nothing secret is handed to a template)."""
        session: Session | None = request.get(SESSION)
        signed_in = session is not None and session.signed_in
        flash, session_flash = [], session.flash if session is not None else []
        while session_flash:
            flash.append(session_flash.pop(0))
        html = self.env.get_template(template).render(
            session=session, signed_in=signed_in, user=session.user if signed_in else None,
            csrf=session.csrf if session is not None else "", deciding=self.token is not None, flash=flash,
            catalogue=self.catalogue.url, rules_folder=self.rules_folder.name, here=request.path_qs,
            **{"since": request.get(SINCE), **context})
        response = web.Response(text=redact(html), content_type="text/html", status=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def refused(self, request: web.Request, status: int, message: str) -> web.Response:
        """An error page that says what was wrong and what to do."""
        return self.render(request, "error.html.j2", status=status, message=message)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Blocking work (SQL, files) in a worker thread, so the page stays responsive."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- who may decide -----------------------------------------------------------------------------

    async def deciding(self, request: web.Request) -> tuple[Session, Any]:
        """The signed-in session and the posted form, or Refused: every POST that changes something comes here."""
        _same_origin(request)
        form = await request.post()
        session: Session | None = request.get(SESSION)
        if session is None or not session.signed_in:
            raise Refused(403, "Deciding needs you to sign in first (reading does not).")
        if not session.csrf_ok(str(form.get("csrf") or "")):
            raise Refused(403, "This form is out of date or did not come from this page (its CSRF token does not "
                               "match). Reload the page and submit it again.")
        return session, form


def _see_other(location: str) -> web.Response:
    """After a POST: go and GET this page (303)."""
    return web.Response(status=303, headers={"Location": location})


def _same_origin(request: web.Request) -> None:
    """Browsers say where a form came from: refuse anything but this origin. (SameSite=Strict keeps the cookie
    from other sites, but another port of the same host is the same site; the CSRF token is checked as well.)"""
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None and fetched_from != "same-origin":
        raise Refused(403, "A form from another page or site cannot post here.")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise Refused(403, "A form from another page or site cannot post here.")


# -- middleware -------------------------------------------------------------------------------------------

@web.middleware
async def _frame(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session and last visit in, security headers out; our errors become pages, never tracebacks."""
    site: TriageSite = request.app[SITE]
    request[SESSION] = site.sessions.get(request.cookies.get(SESSION_COOKIE))
    page = request.method == "GET" and not request.path.startswith("/static/")
    visits = Visits.read(request.cookies.get(VISIT_COOKIE)) if page else None
    if visits is not None:
        request[SINCE] = visits.since
    try:
        response = await handler(request)
    except Refused as exc:
        response = site.refused(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = site.refused(request, exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except StoreError as exc:
        response = site.refused(request, 404 if str(exc).startswith("no quirk") else 400, str(exc))
    except ShadowError as exc:
        response = site.refused(request, 400, str(exc) + (f" — {exc.hint}" if exc.hint else ""))
    except Exception:
        log.exception("triage page: %s %s failed", request.method, request.path)
        response = site.refused(request, 500, "Something went wrong on the server; the log says what.")
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    if visits is not None and response.status < 400:
        response.set_cookie(VISIT_COOKIE, visits.cookie, max_age=400 * 86400, httponly=True, samesite="Strict",
                            path="/", secure=request.secure)
    return response


# -- pages ------------------------------------------------------------------------------------------------

async def quirk_list(request: web.Request) -> web.StreamResponse:
    """GET /: the quirks, filtered, sorted and a page at a time."""
    site: TriageSite = request.app[SITE]
    query = pages.ListQuery.from_params(request.query)
    context = await site.run(pages.list_page, site.catalogue, query, request.get(SINCE))
    return site.render(request, "list.html.j2", **context)


def _quirk_id(request: web.Request) -> str:
    quirk_id = request.match_info["quirk_id"]
    if not pages.QUIRK_ID.match(quirk_id):
        raise Refused(404, f"{quirk_id!r} is not a quirk id (6 to 32 hexadecimal digits).")
    return quirk_id


def _position(request: web.Request) -> int | None:
    try:
        return int(request.query["i"])
    except (KeyError, ValueError):
        return None


async def _quirk_context(request: web.Request, quirk_id: str) -> dict[str, Any]:
    site: TriageSite = request.app[SITE]
    return await site.run(pages.quirk_page, site.catalogue, site.rules_folder, quirk_id,
                          pages.ListQuery.from_params(request.query), _position(request), request.get(SINCE))


async def quirk(request: web.Request) -> web.StreamResponse:
    """GET /quirks/{id}: one quirk, its examples, rule file, history; the forms to decide."""
    site: TriageSite = request.app[SITE]
    return site.render(request, "quirk.html.j2", **await _quirk_context(request, _quirk_id(request)))


async def entity(request: web.Request) -> web.StreamResponse:
    """GET /pairs?key=load_id=L-1: the entity audit, as `shadow pairs show --key` prints it."""
    site: TriageSite = request.app[SITE]
    key = request.query.get("key", "")[:400]
    if not key:
        return site.render(request, "pairs.html.j2", name=None, key="", rows=[])
    try:
        context = await site.run(pages.pairs_page, site.catalogue, key)
    except InputError as exc:
        raise Refused(400, f"{exc} ({exc.hint})" if exc.hint else str(exc)) from None
    return site.render(request, "pairs.html.j2", **context)


async def static(request: web.Request) -> web.StreamResponse:
    """GET /static/{name}: the page's own stylesheet and script, from the package."""
    site: TriageSite = request.app[SITE]
    found = site.static.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, kind = found
    return web.Response(body=body, content_type=kind, headers={"Cache-Control": "max-age=300"})


# -- signing in -------------------------------------------------------------------------------------------

def _set_session(response: web.StreamResponse, request: web.Request, session: Session, max_age: float) -> None:
    response.set_cookie(SESSION_COOKIE, session.id, max_age=int(max_age), httponly=True, samesite="Strict", path="/",
                        secure=request.secure)


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """GET /signin: the sign-in form (an anonymous session carries its CSRF token)."""
    site: TriageSite = request.app[SITE]
    session = request.get(SESSION)
    fresh = session is None
    if fresh:
        session = request[SESSION] = site.sessions.anonymous()
    response = site.render(request, "signin.html.j2", next=_local(request.query.get("next")), error=None, name="")
    if fresh:
        _set_session(response, request, session, site.sessions.anonymous_lifetime_s)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST /signin: name and token; a fresh session on success."""
    site: TriageSite = request.app[SITE]
    _same_origin(request)
    form = await request.post()
    session: Session | None = request.get(SESSION)
    target = _local(str(form.get("next") or ""))
    name = str(form.get("name") or "").strip()[:64]
    if site.token is None:
        raise Refused(403, "Deciding is switched off: start `shadow ui` with the token variable set in its "
                           "environment (SHADOW_UI_TOKEN unless [ui] token_env says otherwise).")
    if session is None or not session.csrf_ok(str(form.get("csrf") or "")):
        raise Refused(403, "The sign-in form is out of date (its CSRF token does not match): open it again.")
    client = request.remote or "?"
    if site.throttle.blocked(client):
        raise Refused(429, "Too many wrong tokens from this address: wait a few minutes.")
    if not token_matches(str(form.get("token") or ""), site.token) or not name:
        site.throttle.failed(client)
        await asyncio.sleep(0.25)
        error = "Give your name (it is recorded with every decision)." if not name else "That token is not the one."
        return site.render(request, "signin.html.j2", status=401, next=target, error=error, name=name)
    fresh = site.sessions.sign_in(session, name)
    fresh.flash.append(f"Signed in as {name}.")
    response = _see_other(target)
    _set_session(response, request, fresh, site.sessions.lifetime_s)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """POST /signout."""
    site: TriageSite = request.app[SITE]
    session, _form = await site.deciding(request)
    site.sessions.sign_out(session)
    response = _see_other("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- deciding ---------------------------------------------------------------------------------------------

def _verdict_fields(form: Any) -> dict[str, Any]:
    verdict = str(form.get("verdict") or "")
    if verdict not in VERDICTS:
        raise Refused(400, f"Choose a verdict: {', '.join(VERDICTS[1:])} (or open to undo a decision).")
    owner = _field(form, "owner", limit=128, required="A verdict needs an owner: who decided.")
    ticket = _field(form, "ticket", limit=64)
    if ticket is not None and not _TICKET.match(ticket):
        raise Refused(400, "A ticket key holds letters, digits and . _ # / : - (e.g. DISP-812).")
    return {"verdict": verdict, "owner": owner, "note": _field(form, "note", limit=2000), "ticket": ticket}


async def set_verdict(request: web.Request) -> web.StreamResponse:
    """POST /quirks/{id}/verdict: the quirk's rule file, catalogue row and audit entry, as `shadow quirks triage`."""
    site: TriageSite = request.app[SITE]
    quirk_id = _quirk_id(request)
    session, form = await site.deciding(request)
    fields = _verdict_fields(form)
    async with site.writing:
        path = await site.run(_triage, site, quirk_id, **fields)
    session.flash.append(f"Quirk {quirk_id}: {fields['verdict']} by {fields['owner']}, written to {path.name}.")
    return _see_other(f"/quirks/{quirk_id}" + (f"?{request.query_string}" if request.query_string else ""))


def _triage(site: TriageSite, quirk_id: str, *, verdict: str, owner: str, note: str | None,
            ticket: str | None) -> Path:
    return triage(site.catalogue, site.rules_folder, quirk_id, verdict, owner=owner, note=note,  # type: ignore[arg-type]
                  ticket=ticket)


async def set_verdicts(request: web.Request) -> web.StreamResponse:
    """POST /quirks/verdict: one verdict for every selected quirk (bulk triage)."""
    site: TriageSite = request.app[SITE]
    session, form = await site.deciding(request)
    ids = [str(i) for i in form.getall("ids", [])]
    back = _local(str(form.get("back") or ""))
    if not ids:
        raise Refused(400, "Select at least one quirk (the boxes in the first column).")
    if len(ids) > _MAX_BULK or not all(pages.QUIRK_ID.match(i) for i in ids):
        raise Refused(400, f"Select up to {_MAX_BULK} quirks by their ids.")
    fields = _verdict_fields(form)
    async with site.writing:
        for quirk_id in dict.fromkeys(ids):
            await site.run(_triage, site, quirk_id, **fields)
    session.flash.append(f"{len(set(ids))} quirk(s): {fields['verdict']} by {fields['owner']}.")
    return _see_other(back)


async def preview_rule(request: web.Request) -> web.StreamResponse:
    """POST /quirks/{id}/rule/preview: what the edited rule file would match and close (`shadow rules test`)."""
    site: TriageSite = request.app[SITE]
    quirk_id = _quirk_id(request)
    _session, form = await site.deciding(request)
    text = str(form.get("text") or "")[:_MAX_RULE].replace("\r\n", "\n")
    context = await _quirk_context(request, quirk_id)
    context["rule"]["draft"] = text
    try:
        report = await site.run(preview_rule_text, site.catalogue, site.rules_folder, quirk_id, text)
    except ConfigError as exc:
        return site.render(request, "quirk.html.j2", status=400, rule_error=str(exc), **context)
    except ShadowError as exc:
        return site.render(request, "quirk.html.j2", status=400, rule_error=str(exc), **context)
    preview = await site.run(pages.preview_view, report, site.catalogue)
    return site.render(request, "quirk.html.j2", preview=preview, **context)


async def save_rule(request: web.Request) -> web.StreamResponse:
    """POST /quirks/{id}/rule: replace the quirk's rule file with the edited text (validated, audited)."""
    site: TriageSite = request.app[SITE]
    quirk_id = _quirk_id(request)
    session, form = await site.deciding(request)
    text = str(form.get("text") or "")[:_MAX_RULE].replace("\r\n", "\n")
    try:
        async with site.writing:
            path = await site.run(save_rule_text, site.catalogue, site.rules_folder, quirk_id, text,
                                  actor=session.user or "?")
    except ShadowError as exc:
        context = await _quirk_context(request, quirk_id)
        context["rule"]["draft"] = text
        return site.render(request, "quirk.html.j2", status=400, rule_error=str(exc), **context)
    session.flash.append(f"Saved {path.name}. Its normalisation steps apply from the next `shadow compare` "
                         f"(or `shadow compare --recompute` for the stored pairs).")
    return _see_other(f"/quirks/{quirk_id}" + (f"?{request.query_string}" if request.query_string else ""))


def create_app(catalogue: Catalogue, rules_folder: Path, *, token: str | None = None,
               session_hours: float = 8.0) -> web.Application:
    """The triage page's app over an open catalogue. `token`: what signs a person in to decide (None: read-only)."""
    app = web.Application(middlewares=[_frame], client_max_size=2 * _MAX_RULE)
    app[SITE] = TriageSite(catalogue, rules_folder, token=token, session_hours=session_hours)
    app.add_routes([
        web.get("/", quirk_list),
        web.get("/quirks/{quirk_id}", quirk),
        web.post("/quirks/verdict", set_verdicts),
        web.post("/quirks/{quirk_id}/verdict", set_verdict),
        web.post("/quirks/{quirk_id}/rule/preview", preview_rule),
        web.post("/quirks/{quirk_id}/rule", save_rule),
        web.get("/pairs", entity),
        web.get("/signin", sign_in_form),
        web.post("/signin", sign_in),
        web.post("/signout", sign_out),
        web.get("/static/{name}", static),
    ])
    return app
