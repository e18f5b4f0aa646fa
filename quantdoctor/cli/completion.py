"""``quantdoctor completion bash|zsh|powershell``: a shell completion script on stdout.

The words come from the parsers themselves (every command and its options) and from the
vocabulary (engines, offloads ...), so a new option or engine completes without an edit
here. Install: ``quantdoctor completion bash > ~/.local/share/bash-completion/completions/
quantdoctor``; zsh: ``quantdoctor completion zsh > "${fpath[1]}/_quantdoctor"``;
PowerShell: ``quantdoctor completion powershell >> $PROFILE``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse

SHELLS = ("bash", "zsh", "powershell")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to print a script for")


def words() -> dict[str, list[str]]:
    """Command -> the options it takes; ``""`` is the bare report (with the commands)."""
    from quantdoctor.cli import COMMANDS, REPORT_MODULE, _load
    from quantdoctor.cli._args import Recorder

    out: dict[str, list[str]] = {}
    for name, (module, _) in {"": (REPORT_MODULE, ""), **COMMANDS}.items():
        recorder = Recorder()
        _load(module).add_arguments(recorder)  # type: ignore[attr-defined]
        out[name] = sorted({"--help", *(o for o in recorder.options if o.startswith("--"))})
    out[""] = [*COMMANDS, *out[""], "--version"]
    return out


def values() -> dict[str, list[str]]:
    """Option -> the values it takes, from the vocabulary (engines: the matrix's)."""
    from quantdoctor.rules import vocab
    from quantdoctor.rules.evaluate import default_matrix

    return {
        "--engine": list(default_matrix().engine_names),
        "--mode": list(vocab.MODES),
        "--offload": list(vocab.OFFLOADS),
        "--component": list(vocab.COMPONENTS),
        "--dtype": list(vocab.DTYPES),
        "--prefer": ["speed", "memory", "quality"],
    }


def bash() -> str:
    case = '        {}) opts="{}" ;;'
    cases = "\n".join(case.format(c or "__top", " ".join(o)) for c, o in words().items())
    val = '        {}) COMPREPLY=($(compgen -W "{}" -- "$cur")); return ;;'
    vals = "\n".join(val.format(o, " ".join(v)) for o, v in values().items())
    return f"""# quantdoctor completion (bash); zsh runs it through bashcompinit
_quantdoctor() {{
    local cur prev cmd opts i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    case "$prev" in
{vals}
        --env|--file|--model|--matrix|--python) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    cmd=__top
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in -*) ;; *) cmd="${{COMP_WORDS[i]}}"; break ;; esac
    done
    case "$cmd" in
{cases}
        *) opts="" ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}}
complete -o default -F _quantdoctor quantdoctor
"""


def zsh() -> str:
    return "#compdef quantdoctor\nautoload -U +X bashcompinit && bashcompinit\n" + bash()


def powershell() -> str:
    def table(d: dict[str, list[str]]) -> str:
        rows = [f"    '{k or '__top'}' = @({', '.join(repr(w) for w in v)})" for k, v in d.items()]
        return "@{\n" + "\n".join(rows) + "\n}"

    return f"""# quantdoctor completion (PowerShell)
Register-ArgumentCompleter -Native -CommandName quantdoctor -ScriptBlock {{
    param($wordToComplete, $commandAst, $cursorPosition)
    $opts = {table(words())}
    $vals = {table(values())}
    $items = @($commandAst.CommandElements | Select-Object -Skip 1 | ForEach-Object {{ "$_" }})
    $before = @($items | Where-Object {{ $_ -ne $wordToComplete }})
    $cmd = '__top'
    foreach ($w in $before) {{ if ($opts.ContainsKey($w)) {{ $cmd = $w; break }} }}
    $candidates = $opts[$cmd]
    if ($before.Count -gt 0 -and $vals.ContainsKey($before[-1])) {{
        $candidates = $vals[$before[-1]]
    }}
    $candidates | Where-Object {{ $_ -like "$wordToComplete*" }} | ForEach-Object {{
        [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
    }}
}}
"""


def run(args: argparse.Namespace) -> int:
    script = {"bash": bash, "zsh": zsh, "powershell": powershell}[args.shell]()
    sys.stdout.write(script)
    return 0
