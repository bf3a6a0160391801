"""Every command's --help ends with one or two real examples, shown as written.

Real means: each example is a `shadow` command line (after any VAR=value prefix) that names this very
command, only options this command has, and parses as the command would parse it — so examples cannot
drift from the code. Shown as written means: in the rendered help at 80 columns, each example is one
line, unchanged (no [brackets] eaten as rich markup, no wrapping).
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterator

import pytest
import typer.main
from typer.testing import CliRunner

from shadow.cli import app

ROOT = typer.main.get_command(app)
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# What rich's markup would take for a tag and swallow (typer's help is rich markup): [store], [bold] …
MARKUP_TAG = re.compile(r"(?<!\\)\[[a-z#/@][^\[]*?\]")


def leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every runnable command under `command`, with its path of names."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path, command
        return
    for name, sub in sorted(subcommands.items()):
        if not getattr(sub, "hidden", False):
            yield from leaves(sub, path + (name,))


COMMANDS = dict(leaves(ROOT))


def rendered_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="shadow", env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def epilog_examples(command: Any) -> list[str]:
    """The examples as written in the code (unescaped from the rich markup `examples()` protects them from)."""
    epilog = command.epilog or ""
    if "Examples:" not in epilog:
        return []
    block = epilog.split("Examples:", 1)[1]
    return [line.strip().removeprefix("$ ").replace("\\[", "[") for line in block.splitlines() if line.strip()]


def option_names(command: Any) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts) if name.startswith("-")}


def resolve(words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The command path an example's words name, and the words left for that command."""
    command, path = ROOT, []
    while getattr(command, "commands", None) and words:
        word = words[0]
        if word.startswith("-"):  # a global option, before the command
            assert word.split("=", 1)[0] in option_names(ROOT), f"{word} is not an option of shadow"
            words = words[1:]
            continue
        assert word in command.commands, f"{' '.join(['shadow', *path])} has no command {word!r}"
        command, path, words = command.commands[word], [*path, word], words[1:]
    return tuple(path), words


def command_words(example: str) -> list[str]:
    """The words of the `shadow` invocation in an example: no VAR=value prefix, nothing after a pipe."""
    words = shlex.split(example)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS:
            words = words[:i]
            break
    return words


IDS = [" ".join(path) for path in COMMANDS]


def test_the_cli_has_the_commands_this_test_walks() -> None:
    assert {"report", "compare", "grafana-dashboard", "cutover plan", "quirks triage"} <= set(IDS)


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_help_ends_with_one_or_two_examples_each_on_its_own_line(path: tuple[str, ...]) -> None:
    name = " ".join(("shadow", *path))
    written = epilog_examples(COMMANDS[path])
    assert 1 <= len(written) <= 2, f"{name}: give the command epilog=examples(…) with one or two examples, " \
                                   f"got {len(written)}"
    lines = [line.strip() for line in rendered_help(path).splitlines()]
    assert "Examples:" in lines, f"{name} --help shows no Examples block"
    after = [line for line in lines[len(lines) - lines[::-1].index("Examples:"):] if line]
    shown = [line.removeprefix("$ ") for line in after]
    for example in written:
        assert example in shown, (f"{name} --help does not show {example!r} on a line of its own "
                                  f"({len(example)} characters: wrapped at 80 columns, or markup eaten): {after}")
    assert shown == written, f"{name} --help must end with its examples, nothing after them: {after}"


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_every_example_names_this_command_and_only_its_options(path: tuple[str, ...]) -> None:
    name = " ".join(("shadow", *path))
    command = COMMANDS[path]
    for example in epilog_examples(command):
        words = command_words(example)
        assert words[:1] == ["shadow"], f"{name}: example {example!r} does not start with `shadow`"
        named, args = resolve(words[1:])
        assert named == path, f"{name}: example {example!r} runs `shadow {' '.join(named)}`, not this command"
        unknown = sorted({w.split("=", 1)[0] for w in args if w.startswith("-") and w != "-"}
                         - option_names(command))
        assert not unknown, f"{name}: example {example!r} names {unknown}, which {name} does not have"
        try:
            command.make_context(name, list(args))  # types, choices, required options, extra arguments
        except Exception as exc:  # the vendored click's UsageError and friends
            pytest.fail(f"{name}: example {example!r} does not parse: {exc}")


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_help_texts_have_no_brackets_that_rich_would_swallow(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    texts = {"the command's help": command.help or ""}
    texts |= {f"--{param.name}": getattr(param, "help", None) or "" for param in command.params}
    eaten = {where: MARKUP_TAG.findall(text) for where, text in texts.items() if MARKUP_TAG.search(text)}
    assert not eaten, f"shadow {' '.join(path)}: write \\\\[ for a literal [ in help (rich markup): {eaten}"
