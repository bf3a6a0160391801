"""`shadow spill status|drain`: the pairs waiting on disk while a store or broker was down, for an operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from shadow.cli import common
from shadow.cli.common import ConfigOption, JsonOption, examples, handle_errors, out, print_json, progress_bar, spill_app
from shadow.errors import ShadowError


def _spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.spill")) if folder.is_dir() else []


def _describe(path: Path) -> dict[str, Any]:
    from adapters.spill import SpillFile

    spill = SpillFile(path)
    pending = list(spill.pending()) if spill.has_pending() else []
    times = [p.command.received_at for p in pending]
    return {"file": str(path), "sink": path.name.split("-", 1)[0], "pending": len(pending), "bytes": spill.size(),
            "drained_offset": spill.offset(), "oldest": min(times).isoformat() if times else None,
            "newest": max(times).isoformat() if times else None}


@spill_app.command("status", epilog=examples("shadow spill status", "shadow spill status --config shadow.toml --json"))
@handle_errors
def spill_status(config: Optional[Path] = ConfigOption, as_json: bool = JsonOption) -> None:
    """Pairs waiting in the spill files of \\[proxy] spill_dir: how many, since when."""
    loaded = common.load_cli_config(config)
    assert loaded is not None
    found = [_describe(path) for path in _spill_files(loaded.proxy.spill_dir)]
    if as_json:
        print_json({"spill_dir": str(loaded.proxy.spill_dir), "files": found})
        return
    if not found:
        out.print(f"no spill file in {loaded.proxy.spill_dir}: nothing waits", markup=False)
        return
    table = Table(title=f"spill files in {loaded.proxy.spill_dir}", title_justify="left")
    for column in ("file", "sink", "pending pairs", "bytes", "oldest", "newest"):
        table.add_column(column, overflow="fold")
    for f in found:
        table.add_row(Path(f["file"]).name, f["sink"], f"{f['pending']:,}", f"{f['bytes']:,}", f["oldest"] or "-",
                      f["newest"] or "-")
    out.print(table)


@spill_app.command("drain", epilog=examples(
    "shadow spill drain",
    "shadow spill drain --file spill/catalogue-127.0.0.1-8080.spill"))
@handle_errors
def spill_drain(config: Optional[Path] = ConfigOption,
                file: Optional[Path] = typer.Option(None, "--file", help="only this spill file"),
                as_json: bool = JsonOption) -> None:
    """Deliver the waiting pairs to the configured store or broker, oldest first (a proxy that runs drains its own)."""
    from adapters.spill import SpillBusy, SpillFile, drain
    from shadow.pipeline import delivery_for

    loaded = common.load_cli_config(config)
    assert loaded is not None
    files = [file] if file is not None else _spill_files(loaded.proxy.spill_dir)
    done = []
    for path in files:
        spill = SpillFile(path)
        try:
            spill.lock()
        except SpillBusy as exc:
            raise ShadowError(str(exc), hint="a running proxy drains its own file; stop it, or let it") from None
        try:
            total = sum(1 for _ in spill.pending()) if spill.has_pending() else 0
            deliver, close = delivery_for(path.name.split("-", 1)[0], loaded)
            try:
                with progress_bar(quiet=as_json) as progress:
                    task = progress.add_task(f"draining {path.name}", total=total)
                    drained = drain(spill, deliver, on_progress=lambda n, t=task: progress.advance(t, n))
            finally:
                close()
        finally:
            spill.unlock()
        done.append({"file": str(path), "drained": drained})
    if as_json:
        print_json(done)
        return
    for d in done:
        out.print(f"{d['file']}: {d['drained']:,} pair(s) delivered", markup=False)
    if not done:
        out.print(f"no spill file in {loaded.proxy.spill_dir}", markup=False)
