"""`shadow ui`: the triage page for product owners (shadow.web), served until Ctrl+C."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from shadow.cli.common import (ConfigOption, RulesOption, StoreOption, app, err, examples, handle_errors,
                               load_cli_config, out, rules_folder, store_url)
from shadow.config import UiConfig
from shadow.errors import ShadowError
from shadow.secrets import register_secret


@app.command("ui", epilog=examples(
    "SHADOW_UI_TOKEN=… shadow ui --config shadow.toml",
    "shadow ui --config .demo/shadow.toml --port 9000"))
@handle_errors
def ui(config: Optional[Path] = ConfigOption, store: Optional[str] = StoreOption, rules: Optional[Path] = RulesOption,
       host: Optional[str] = typer.Option(None, "--host", help="address to listen on (default: shadow.toml's \\[ui] "
                                                               "host, else 127.0.0.1: this machine only)"),
       port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="port (default: \\[ui] port, else 8089)")
       ) -> None:
    """The triage page: filter the quirks, read their examples, decide them (reading needs no sign-in; deciding
    needs the token from the environment variable \\[ui] token_env names, SHADOW_UI_TOKEN by default).
    """
    from aiohttp import web

    from rules.catalogue import open_catalogue
    from shadow.web import create_app

    loaded = load_cli_config(config, required=False)
    settings = loaded.ui if loaded is not None else UiConfig()
    host = host or settings.host
    port = port or settings.port
    token = os.environ.get(settings.token_env) or None  # the only place the token is read: the CLI edge
    if token is not None:
        if len(token) < 12:
            raise ShadowError(f"{settings.token_env} is shorter than 12 characters",
                              hint="use a long random token, e.g. $(openssl rand -hex 16)")
        register_secret(token)
    folder = rules_folder(config, rules)
    catalogue = open_catalogue(store_url(config, store))
    try:
        application = create_app(catalogue, folder, token=token, session_hours=settings.session_hours)
        shown = f"[{host}]" if ":" in host else host
        out.print(Text(f"triage page on http://{shown}:{port}/ — catalogue {catalogue.url}, rules {folder}",
                       style="bold"))
        if token is None:
            out.print(f"read-only: set {settings.token_env} in the environment to let people sign in and decide",
                      markup=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(Text(f"listening on {host}: anyone who reaches it can read every quirk (plain HTTP; put a TLS "
                           f"proxy in front for sign-ins across a network)", style="yellow"))
        try:
            web.run_app(application, host=host, port=port, print=None, handle_signals=True)
        except OSError as exc:
            raise ShadowError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                              hint="choose another --port, or stop what listens there") from None
    finally:
        catalogue.close()
