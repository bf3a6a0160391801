"""`shadow init`: a commented shadow.toml (and an empty rules folder) that validates as written."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from shadow.cli.common import JsonOption, app, examples, handle_errors, out, print_json


@app.command("init", epilog=examples("shadow init --legacy http://10.0.0.5:8080 --new http://10.0.0.9:8080",
                                     "shadow init --openapi openapi.yaml --legacy http://10.0.0.5:8080"))
@handle_errors
def init_cmd(legacy: Optional[str] = typer.Option(None, "--legacy", help="URL of the legacy dispatch API "
                                                                         "(default: the reference pair's)"),
             new: Optional[str] = typer.Option(None, "--new", help="URL of the new engine's API"),
             openapi: Optional[Path] = typer.Option(None, "--openapi", help="OpenAPI 3 or Swagger 2 file (JSON or "
                                                                            "YAML): each POST/PUT/PATCH/DELETE "
                                                                            "becomes a route, GETs are reads"),
             config: Path = typer.Option(Path("shadow.toml"), "--config", "-c", help="file to write"),
             force: bool = typer.Option(False, "--force", help="replace the file if it exists"),
             as_json: bool = JsonOption) -> None:
    """Write a commented shadow.toml and an empty rules folder; it validates as written, and never overwrites
    an existing file without --force."""
    from shadow.scaffold import init_files

    path, rules, api = init_files(config, legacy=legacy, new=new, openapi=openapi, force=force)
    commands = [{"match": f"{r.method} {r.path}", "command": r.command, "keys": list(r.keys), "read": r.read}
                for r in (api.commands if api else [])]
    if as_json:
        print_json({"config": str(path), "rules": str(rules), "routes": commands,
                    "reads": len(api.reads) if api else 0, "skipped": api.skipped if api else []})
        return
    out.print(f"wrote {path} and the rules folder {rules}/")
    if api is not None:
        out.print(f"{len(api.commands)} command route(s) and {len(api.reads)} read(s) from {api.source}"
                  + (f"; {len(api.skipped)} operation(s) skipped (the file says why)" if api.skipped else ""))
        for route in commands:
            read = f"  ← {route['read']}" if route["read"] else "  (no read-back found)"
            out.print(f"  {route['match']} → {route['command']} keys={route['keys']}{read}")
    out.print(f"next: `shadow doctor --config {path}` checks the targets, databases and store it names")
