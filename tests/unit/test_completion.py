"""Shell completion: `shadow --show-completion`, `shadow --install-completion`, and the completions themselves.

Runs the installed `shadow` console script in subprocesses (under bash, which is how a user's shell finds
it); the install test writes into a temporary HOME, never the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHADOW = Path(sys.executable).parent / "shadow"
BASH = shutil.which("bash")

pytestmark = [pytest.mark.skipif(not SHADOW.exists(), reason="the shadow console script is not installed"),
              pytest.mark.skipif(BASH is None, reason="no bash on this machine")]


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_SHADOW_COMPLETE")}
    env.update(HOME=str(home), SHELL=str(BASH), PATH=f"{SHADOW.parent}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def in_bash(script: str, home: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    # `; exit $?` keeps bash from exec'ing the last command: shadow then finds bash as its parent shell.
    return subprocess.run([str(BASH), "--norc", "--noprofile", "-c", f"{script}; exit $?"], env=environment(home, **extra),
                          capture_output=True, text=True, timeout=60)


def complete(words: str, home: Path) -> list[str]:
    """What bash completion offers for the last of `words` (click's protocol, as the installed script speaks it)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = subprocess.run([str(SHADOW)], env=environment(home, _SHADOW_COMPLETE="complete_bash", COMP_WORDS=words,
                                                         COMP_CWORD=str(cword)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_show_completion_prints_a_bash_script_for_shadow(tmp_path) -> None:
    done = in_bash(f'"{SHADOW}" --show-completion bash', tmp_path)
    assert done.returncode == 0, done.stderr
    assert "_SHADOW_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _shadow_completion shadow" in done.stdout


def test_commands_subcommands_and_options_complete(tmp_path) -> None:
    assert complete("shadow cut", tmp_path) == ["cutover"]
    assert complete("shadow cutover ex", tmp_path) == ["execute"]
    assert complete("shadow grafana", tmp_path) == ["grafana-dashboard"]
    assert "--metrics-listen" in complete("shadow compare --me", tmp_path)


def test_install_completion_writes_a_script_that_bash_completes_with(tmp_path) -> None:
    done = in_bash(f'"{SHADOW}" --install-completion', tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "shadow.sh"
    assert script.is_file(), done.stdout
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    # What bash does on TAB: load the rc file, then call the completion function for the words typed.
    offered = in_bash('source ~/.bashrc; COMP_WORDS=(shadow quirks tr); COMP_CWORD=2; '
                      '_shadow_completion shadow; printf "%s\\n" "${COMPREPLY[@]}"', tmp_path)
    assert offered.returncode == 0, offered.stderr
    assert offered.stdout.split() == ["triage"]
