"""The generated pages of the docs site: configuration, rule-file and canary-plan references from the pydantic
models, the CLI reference from the typer app; and generated parts of written pages: the report tables' columns
(`reports.tables.COLUMNS`), the transition classes (`rules.transitions`), the metrics (`shadow.metrics`), the
performance figures (the README's table, kept there).

The site's build hook (docs/hooks.py) calls these on every `mkdocs build`, so the references cannot drift
from the code; `undocumented()` lists every field, command, option or argument that has no description, and a
unit test fails naming each one.
"""

from __future__ import annotations

import html
import inspect
import re
import types
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["ModelPage", "CONFIG", "RULES", "CANARY_PLAN", "config_reference", "rules_reference",
           "canary_plan_reference", "cli_reference", "report_columns", "transition_classes", "metrics_reference",
           "reference_pair", "performance", "undocumented", "undocumented_fields", "undocumented_commands"]


# -- pydantic models → Markdown ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelPage:
    """A file validated by one root model: what the page is called and how its sections are written."""

    title: str
    file: str          # the file the model validates, e.g. "shadow.toml"
    root: str          # dotted import path of the root model
    intro: str

    def model(self) -> type[BaseModel]:
        """The root model class."""
        module, _, name = self.root.rpartition(".")
        return getattr(__import__(module, fromlist=[name]), name)


CONFIG = ModelPage(
    "Configuration reference", "shadow.toml", "shadow.config.Config",
    "Every key of `shadow.toml`, generated from the pydantic models in `shadow/config.py` that validate it: "
    "what you read here is what `shadow config check` enforces. An unknown key, a wrong type or a value out of "
    "range is refused with the file, the key path and the reason (exit code 2).")
RULES = ModelPage(
    "Rule-file reference", "rules/*.toml", "rules.rulefile.RuleFile",
    "Every key of a rule file, generated from the pydantic models in `rules/rulefile.py`. Rule files live in "
    "the folder `[store] rules` names, one per quirk or per concern; `shadow rules check` validates them all.")
CANARY_PLAN = ModelPage(
    "Canary-plan reference", "canary.toml", "cutover.canary_plan.CanaryPlan",
    "Every key of a canary plan file (`shadow cutover run PLAN`), generated from the pydantic models in "
    "`cutover/canary_plan.py` and `cutover/sla.py`.")


@dataclass
class _Field:
    key: str
    name: str
    type: str
    default: str
    description: str
    secret: bool
    owner: str                      # Model.field, for messages
    link: str | None = None         # the section documenting a nested table


@dataclass
class _Section:
    header: str                     # TOML header as written: [targets.legacy], [[routes]]
    anchor: str
    model: type[BaseModel]
    fields: list[_Field] = field(default_factory=list)


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", datetime: "datetime"}


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _without_none(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]
    return tp


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e16 else f"{value:.1f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}" if value else "{}"
    return f'"{value}"'  # Dsn: its masked form


def _type_name(tp: Any) -> str:
    tp = _without_none(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if getattr(tp, "__name__", "") == "Dsn":
        return "URL"
    if tp is Any:
        return "any value"
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(_toml(a) for a in args)
    if origin in (list, tuple):
        inner = args[0] if args else Any
        return "array of tables" if _is_model(_without_none(inner)) else f"array of {_plural(_type_name(inner))}"
    if origin is dict:
        return "table of tables" if _is_model(args[1]) else f"table: name → {_type_name(args[1])}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if _is_model(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _plural(name: str) -> str:
    return {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans",
            "path": "paths"}.get(name, name)


def _constraints(info: Any) -> str:
    parts = []
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                parts.append(f"{sign} {getattr(item, attr):g}")
        if getattr(item, "min_length", None):
            parts.append(f"at least {item.min_length} long" if item.min_length > 1 else "not empty")
        if getattr(item, "pattern", None):
            parts.append(f"matching `{item.pattern}`")
    return ", ".join(parts)


def _default(info: Any) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{_toml(value)}`"


def _secret(info: Any) -> bool:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bool(extra.get("secret")) or "Dsn" in repr(info.annotation)


def _walk(model: type[BaseModel], key: str, header: str, sections: list[_Section]) -> None:
    """Add the section of `model` (at dotted `key`, written `header`) and, after it, its nested sections."""
    section = _Section(header, key or "top-level", model)
    sections.append(section)
    nested: list[tuple[type[BaseModel], str, str]] = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        tp = _without_none(info.annotation)
        path = f"{key}.{name}" if key else name
        origin, args = get_origin(tp), get_args(tp)
        link = None
        if _is_model(tp):
            nested.append((tp, path, f"[{path.replace('[]', '')}]"))
            link = path
        elif origin is dict and _is_model(args[1]):
            names = get_args(args[0]) if get_origin(args[0]) is Literal else ("<name>",)
            sub = f"{path}.<{'/'.join(names)}>" if len(names) > 1 else f"{path}.{names[0]}"
            nested.append((args[1], sub, ", ".join(f"[{path.replace('[]', '')}.{n}]" for n in names)))
            link = sub
        elif origin in (list, tuple) and args and any(_is_model(a) for a in get_args(args[0]) or (args[0],)):
            inner = next(a for a in (get_args(args[0]) or (args[0],)) if _is_model(a))
            nested.append((inner, f"{path}[]", f"[[{path.replace('[]', '')}]]"))
            link = f"{path}[]"
        kind = _type_name(tp)
        limits = _constraints(info)
        section.fields.append(_Field(path, name, f"{kind}, {limits}" if limits else kind, _default(info),
                                     (info.description or "").strip(), _secret(info),
                                     f"{model.__name__}.{name}", link))
    for sub_model, sub_key, sub_header in nested:
        _walk(sub_model, sub_key, sub_header, sections)


def _sections(page: ModelPage) -> list[_Section]:
    sections: list[_Section] = []
    _walk(page.model(), "", "", sections)
    return sections


def _cell(text: str) -> str:
    """Prose for a Markdown table cell or paragraph: HTML escaped outside `code`, pipes and newlines made safe."""
    parts = text.replace("\n", " ").split("`")
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"`{part}`")
        else:
            part = html.escape(part, quote=False)
            out.append(re.sub(r"([*_\[\]])", r"\\\1", part))
    return "".join(out).replace("|", "\\|")


def _anchor(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "top-level"


def model_reference(page: ModelPage, *, whole_page: bool = True) -> str:
    """The Markdown reference of one file format: a section per table, a row per key (with `whole_page`, under
    the page's title and introduction; without, to follow a written page's own)."""
    lines = [f"# {page.title}", "", page.intro, ""] if whole_page else []
    lines += ["Each section below is one table of the file, headed as you write it: `[[…]]` is an array of "
             "tables (write it once per entry), `<name>` a key you choose. A key that holds a table links to "
             "its section. A **secret** is masked (`***`) in every output and log line; every value taken "
             "from the environment with `${VAR}` is treated as one too.", ""]
    for section in _sections(page):
        doc = re.split(r"\n\s*\n", inspect.cleandoc(section.model.__doc__ or ""))
        title = f"`{section.header}`" if section.header else f"Top level of `{page.file}`"
        lines += [f"## {title} {{#{_anchor(section.anchor)}}}", "", *(_cell(p) + "\n" for p in doc)]
        if not section.fields:
            continue
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for f in section.fields:
            description = _cell(f.description)
            if f.secret:
                description = "**secret** — " + description
            key = f"[`{f.name}`](#{_anchor(f.link)})" if f.link else f"`{f.name}`"
            lines.append(f"| {key} | {_cell(f.type)} | {f.default} | {description} |")
        lines.append("")
    return "\n".join(lines)


def config_reference(*, whole_page: bool = True) -> str:
    """The `shadow.toml` reference, from `shadow.config.Config`."""
    return model_reference(CONFIG, whole_page=whole_page)


def rules_reference(*, whole_page: bool = True) -> str:
    """The rule-file reference, from `rules.rulefile.RuleFile`."""
    return model_reference(RULES, whole_page=whole_page)


def canary_plan_reference() -> str:
    """The canary-plan reference, from `cutover.canary_plan.CanaryPlan`."""
    return model_reference(CANARY_PLAN)


def undocumented_fields() -> list[str]:
    """Every config, rule-file or canary-plan key (and model) that has no description."""
    return list(_undocumented_fields())


def _undocumented_fields() -> Iterator[str]:
    for page in (CONFIG, RULES, CANARY_PLAN):
        for section in _sections(page):
            if not (section.model.__doc__ or "").strip():
                yield f"{page.file}: model {section.model.__name__} has no docstring"
            for f in section.fields:
                if not f.description:
                    yield f"{page.file}: {f.key} ({f.owner}) has no description"


# -- the typer app → Markdown -------------------------------------------------------------------------------

def _commands() -> Iterator[tuple[list[str], Any]]:
    """Every command and group of `shadow`, depth first, as (words after `shadow`, click command)."""
    import typer

    from shadow.cli import app

    def walk(command: Any, words: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield words, command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk(sub, [*words, name])

    yield from walk(typer.main.get_command(app), [])


_TYPER_ESCAPE = re.compile(r"\\(\[)")  # help text escapes [ from rich markup: \[store] is shown [store]


def _unescaped(text: str | None) -> str:
    return _TYPER_ESCAPE.sub(r"\1", text or "")


def _split_help(text: str | None) -> tuple[list[str], list[str]]:
    """A command's help as (paragraphs, example command lines): an 'Examples:' paragraph becomes examples."""
    text = _TYPER_ESCAPE.sub(r"\1", inspect.cleandoc(text or "")).replace("\b\n", "")
    paragraphs, examples = [], []
    blocks = re.split(r"\n\s*\n", text)
    in_examples = False
    for block in blocks:
        if block.strip().startswith("Examples:"):
            in_examples = True
            block = block.strip()[len("Examples:"):]
        if in_examples:
            examples += [line.strip().removeprefix("$ ") for line in block.splitlines() if line.strip()]
        elif block.strip():
            paragraphs.append(" ".join(line.strip() for line in block.splitlines()))
    return paragraphs, examples


def _param_type(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if getattr(param, "is_flag", False):
        return "flag"
    if get_origin(annotation) in (list, tuple):
        annotation = get_args(annotation)[0]
    name = {str: "text", int: "integer", float: "number", Path: "path", bool: "flag"}.get(annotation, "text")
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{name}, {low:g}–{high:g}"
    if low is not None:
        return f"{name}, ≥ {low:g}"
    return name


def _param_default(param: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    default = getattr(param, "default", None)
    if getattr(param, "secondary_opts", None) and isinstance(default, bool):
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if default is None or default is False or default == () or default == []:
        return ""
    return f"`{default}`"


def _usage(words: list[str], command: Any) -> str:
    pieces = ["shadow", *words]
    if any(p.param_type_name == "option" for p in command.params):
        pieces.append("[OPTIONS]")
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        name = param.name.upper() + ("..." if param.nargs == -1 else "")
        pieces.append(name if param.required else f"[{name}]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def cli_reference() -> str:
    """The CLI reference: every command's usage, help, arguments, options and examples."""
    lines = ["# CLI reference", "",
             "Every command of `shadow`, generated from the typer app in `shadow/cli/` on each build of this "
             "site, so it says what `shadow COMMAND --help` says. Global options go before the command: "
             "`shadow --debug report`. Exit codes are listed on [their own page](exit-codes.md).", ""]
    for words, command in _commands():
        depth = min(len(words), 2) + 1 if words else 1
        title = " ".join(["shadow", *words])
        if words:
            lines += [f"{'#' * (depth)} `{title}` {{#{_anchor(title)}}}", ""]
        paragraphs, examples = _split_help(command.help)
        lines += [_cell(p) + "\n" for p in paragraphs]
        lines += ["```text", _usage(words, command), "```", ""]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if p.param_type_name == "option"]
        if arguments:
            lines += ["| argument | type | | description |", "|---|---|---|---|"]
            for p in arguments:
                lines.append(f"| `{p.name.upper()}` | {_cell(_param_type(p))} | {_param_default(p)} | "
                             f"{_cell(_unescaped(p.help))} |")
            lines.append("")
        if options:
            lines += ["| option | type | default | description |", "|---|---|---|---|"]
            for p in options:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                envvar = f" Environment: `{p.envvar}`." if p.envvar else ""
                lines.append(f"| {names} | {_cell(_param_type(p))} | {_param_default(p)} | "
                             f"{_cell(_unescaped(p.help))}{envvar} |")
            lines.append("")
        if getattr(command, "epilog", None):
            epilog_paragraphs, epilog_examples = _split_help(command.epilog)
            lines += [_cell(p) + "\n" for p in epilog_paragraphs]
            examples += epilog_examples
        if examples:
            lines += ["Examples:", "", "```sh", *examples, "```", ""]
        if getattr(command, "commands", None):
            subs = [(name, sub) for name, sub in command.commands.items() if not sub.hidden]
            lines += ["| command | what it does |", "|---|---|"]
            for name, sub in subs:
                target = _anchor(f"{title} {name}")
                lines.append(f"| [`{name}`](#{target}) | {_cell(_unescaped(sub.get_short_help_str(limit=200)))} |")
            lines.append("")
    return "\n".join(lines)


def undocumented_commands() -> list[str]:
    """Every command, option and argument of `shadow` that has no help text."""
    return list(_undocumented_commands())


def _undocumented_commands() -> Iterator[str]:
    for words, command in _commands():
        title = " ".join(["shadow", *words])
        if not (command.help or "").strip():
            yield f"{title}: the command has no help text"
        for param in command.params:
            if not getattr(param, "help", None) and param.name != "help":
                label = param.opts[0] if param.param_type_name == "option" else param.name.upper()
                yield f"{title} {label}: no help text"


# -- other generated content ---------------------------------------------------------------------------------

def report_columns() -> str:
    """The columns of the exported report tables (pair_results, differences, quirks), from `COLUMNS`."""
    from reports.tables import COLUMNS

    lines = []
    for table, columns in COLUMNS.items():
        lines += [f"`{table}`:", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {_cell(str(c.type))} | {_cell(c.doc)} |" for c in columns]
        lines.append("")
    return "\n".join(lines)


def reference_pair() -> str:
    """The reference dispatch pair's own README (its HTTP API and planted quirks), as a page of the site."""
    from importlib import resources

    return resources.files("shadow.demo").joinpath("README.md").read_text(encoding="utf-8")


def undocumented() -> list[str]:
    """Every config, rule-file or plan key, command, option and argument that has no description."""
    return [*undocumented_fields(), *undocumented_commands()]


def transition_classes() -> str:
    """Every transition class: its plain words and what it usually means (rules.transitions)."""
    from rules.transitions import DESCRIPTIONS, EXPLANATIONS

    lines = ["| class | in plain words | what it usually means |", "|---|---|---|"]
    lines += [f"| `{name}` | {_cell(words)} | {_cell(EXPLANATIONS.get(name, ''))} |" for name, words in DESCRIPTIONS.items()]
    return "\n".join(lines) + "\n"


def metrics_reference() -> str:
    """Every Prometheus metric of the proxy and of a comparator worker, from their registries (shadow.metrics)."""
    from shadow.metrics import ProxyMetrics, WorkerMetrics

    suffix = {"counter": "_total", "info": "_info"}
    lines = []
    for title, registry in (("The proxy: `GET /-/metrics`", ProxyMetrics().registry),
                            ("A comparator worker: `GET /metrics`", WorkerMetrics("TOPIC").registry)):
        lines += [f"## {title}", "", "| metric | type | labels | what it counts |", "|---|---|---|---|"]
        collectors = sorted(registry._collector_to_names, key=lambda c: getattr(c, "_name", ""))  # noqa: SLF001
        for collector in collectors:
            kind = getattr(collector, "_type", "")
            name = getattr(collector, "_name", "") + suffix.get(kind, "")
            labels = ", ".join(f"`{label}`" for label in getattr(collector, "_labelnames", ()))
            lines.append(f"| `{name}` | {kind} | {labels} | {_cell(getattr(collector, '_documentation', ''))} |")
        lines.append("")
    return "\n".join(lines)


def performance() -> str:
    """The README's `## Performance` section (its table and notes), so the figures live in one place."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Performance\n", 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0].strip() + "\n"
    return section.replace("](docs/", "](")  # README links into docs/ (a chart) are relative to docs/ here
