"""The caches (quantdoctor._dirs): plain JSON checked on read, private writes, own folder.

Each test runs a real command in a subprocess against a cache dir of its own, plants
what a hostile or broken cache dir would hold, and checks the verdict is the one the
built-in matrix gives, nothing planted ran, and nothing of the user's changed.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envs import H100_LINUX

from quantdoctor._dirs import FORMAT

ROOT = Path(__file__).resolve().parent.parent
#: --no-cache: these tests are about the matrix's and the overlays' caches, which a
#: verdict read back (the last tests) would not touch.
PLAN = ["check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced", "--json"]
CHECK = [*PLAN, "--no-cache"]


def run(cache: Path, *args: str, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QUANTDOCTOR_CACHE_DIR": str(cache),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    extra = ["--env", str(env_file)] if env_file else []
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", *args, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(H100_LINUX), encoding="utf-8")
    return path


def store(cache: Path) -> Path:
    from quantdoctor._dirs import SUBDIR

    return cache / SUBDIR


def matrix_entry(cache: Path) -> Path:
    found = sorted(store(cache).glob("matrix-*.json"))
    assert len(found) == 1, found
    return found[0]


def test_the_matrix_is_cached_as_plain_json_in_a_private_folder_with_a_marker(
    tmp_path: Path, env_file: Path
) -> None:
    cache = tmp_path / "cache"
    done = run(cache, *CHECK, env_file=env_file)
    assert done.returncode == 1, done.stderr
    folder = store(cache)
    assert (folder / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f")
    head, data = read(matrix_entry(cache))
    assert head["format"] == FORMAT and head["kind"] == "matrix"
    assert isinstance(data["rules"], list)  # type: ignore[index]
    if hasattr(os, "getuid"):
        assert folder.stat().st_mode & 0o777 == 0o700
        assert matrix_entry(cache).stat().st_mode & 0o777 == 0o600


def read(entry_path: Path) -> tuple[dict[str, object], object]:
    """An entry's header line and its data."""
    head, _, payload = entry_path.read_bytes().partition(b"\n")
    return json.loads(head), json.loads(payload)


def _forge(entry_path: Path, change: object) -> None:
    """Rewrite an entry's data and fix its digest: a forgery that knows the format."""
    import hashlib

    head, data = read(entry_path)
    change(data)  # type: ignore[operator]
    payload = json.dumps(data).encode()
    head["digest"] = hashlib.blake2b(payload, digest_size=32).hexdigest()
    entry_path.write_bytes(json.dumps(head).encode() + b"\n" + payload)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-40]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"\x80\x04K\x01."), id="a pickle"),
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe garbage"), id="not utf-8"),
        pytest.param(
            lambda p: p.write_text(p.read_text().replace('"block"', '"info"')),
            id="edited without the digest",
        ),
        pytest.param(
            lambda p: _forge(p, lambda d: d.__setitem__("rules", [{"id": 1}])), id="bad shape"
        ),
        pytest.param(
            lambda p: _forge(
                p, lambda d: d["rules"][0].__setitem__("when", {"fact": "nope", "is": 1})
            ),
            id="bad condition",
        ),
        pytest.param(
            lambda p: _forge(
                p, lambda d: d["rules"][0].__setitem__("when", {"fact": "gpu.name", "matches": [1]})
            ),
            id="a pattern that is no string",
        ),
        pytest.param(
            lambda p: _forge(p, lambda d: d["rules"][0].pop("message")),
            id="a rule without a required field",
        ),
        pytest.param(
            lambda p: _forge(p, lambda d: d["rules"][0].__setitem__("fix", 3)),
            id="a default field of the wrong type",
        ),
        pytest.param(
            lambda p: p.write_text(p.read_text().replace('"format": 2', '"format": 3')),
            id="another format",
        ),
        pytest.param(lambda p: p.write_text("[" * 100000), id="deep nesting"),
    ],
)
def test_a_damaged_matrix_entry_is_rebuilt_not_trusted(
    tmp_path: Path, env_file: Path, damage: object
) -> None:
    cache = tmp_path / "cache"
    assert run(cache, *CHECK, env_file=env_file).returncode == 1
    path = matrix_entry(cache)
    damage(path)  # type: ignore[operator]
    done = run(cache, *CHECK, env_file=env_file)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["status"] == "blocked"
    # rebuilt: the entry is whole again
    assert read(matrix_entry(cache))[1]["rules"]  # type: ignore[index]


def test_a_planted_pickle_never_runs(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    cache.mkdir()
    blob = pickle.dumps(Planted())
    stat = (ROOT / "quantdoctor" / "matrix.yaml").stat()
    (cache / f"matrix-{stat.st_mtime_ns}-{stat.st_size}.pickle").write_bytes(blob)
    assert run(cache, *CHECK, env_file=env_file).returncode == 1
    run(cache, *CHECK, env_file=env_file)
    assert not marker.exists()
    folder = store(cache)
    for name in ("matrix-x.json", "matrix-0123456789abcdef0123456789abcdef.json"):
        (folder / name).write_bytes(blob)
    assert run(cache, *CHECK, env_file=env_file).returncode == 1
    assert not marker.exists()


def test_symlinks_planted_in_the_cache_never_redirect_a_write(
    tmp_path: Path, env_file: Path
) -> None:
    cache = tmp_path / "cache"
    assert run(cache, *CHECK, env_file=env_file).returncode == 1
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's file\n")
    entry = matrix_entry(cache)
    entry.unlink()
    entry.symlink_to(victim)  # the entry's own name
    for i in range(50):  # and every temporary name an old version would have used
        (store(cache) / f".{entry.name}.{os.getpid() + i}.tmp").symlink_to(victim)
    done = run(cache, *CHECK, env_file=env_file)
    assert done.returncode == 1, done.stderr
    assert victim.read_text() == "the user's file\n"
    assert not matrix_entry(cache).is_symlink()


def test_a_cache_folder_that_is_a_symlink_or_writable_by_others_is_not_used(
    tmp_path: Path, env_file: Path
) -> None:
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.mkdir()
    store(cache).symlink_to(elsewhere, target_is_directory=True)
    done = run(cache, *CHECK, env_file=env_file)
    assert done.returncode == 1, done.stderr
    assert list(elsewhere.iterdir()) == []
    if hasattr(os, "getuid"):
        other = tmp_path / "shared"
        assert run(other, *CHECK, env_file=env_file).returncode == 1
        store(other).chmod(0o777)
        matrix_entry(other).write_text("{}")
        done = run(other, *CHECK, env_file=env_file)
        assert done.returncode == 1 and done.stderr == ""
        assert matrix_entry(other).read_text() == "{}"  # not read, not rewritten: not ours


def test_user_files_in_the_cache_dir_are_never_deleted(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    mine = [cache / f"report-{i}.json" for i in range(10)]
    mine += [cache / f"matrix-{i}.pickle" for i in range(3)]
    mine.append(cache / "notes.txt")
    for p in mine:
        p.write_text('{"mine": true}')
    for _ in range(3):
        assert run(cache, *CHECK, env_file=env_file).returncode == 1
        run(cache, "--json")
    for p in mine:
        assert p.read_text() == '{"mine": true}', p


def test_a_cache_dir_that_is_a_file_costs_the_cache_not_the_command(
    tmp_path: Path, env_file: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    done = run(notes, *CHECK, env_file=env_file)
    assert done.returncode == 1 and done.stderr == ""
    assert notes.read_text() == "mine\n"


def test_a_forged_report_is_not_printed_as_this_machines(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run(cache, "--json")
    assert first.returncode in (0, 1, 3), first.stderr
    [entry] = store(cache).glob("report-*.json")
    # a naive edit (the digest no longer matches)
    entry.write_text(entry.read_text().replace("linux", "FORGEDOS"))
    assert "FORGEDOS" not in run(cache, "--json").stdout
    # a forgery that fixes the digest but claims other facts
    [entry] = store(cache).glob("report-*.json")
    _forge(entry, lambda d: d["inputs"]["env"].__setitem__("os", "FORGEDOS"))
    again = run(cache, "--json")
    assert "FORGEDOS" not in again.stdout
    assert again.stdout == first.stdout


def test_an_overlay_is_cached_by_its_content(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "rules:\n- id: local.no_quanto\n  select: {engine: quanto}\n  severity: block\n"
        "  message: not here\n  source: local policy\n",
        encoding="utf-8",
    )
    args = ["check", "--engine", "quanto", "--scheme", "qint8", "--json", "--matrix", str(overlay)]
    assert json.loads(run(cache, *args, env_file=env_file).stdout)["status"] == "blocked"
    assert len(list(store(cache).glob("overlay-*.json"))) == 1
    assert json.loads(run(cache, *args, env_file=env_file).stdout)["status"] == "blocked"
    overlay.write_text(overlay.read_text().replace("block", "info"), encoding="utf-8")
    assert json.loads(run(cache, *args, env_file=env_file).stdout)["status"] == "ok"


def test_a_cached_rule_leaves_its_defaults_out_and_reads_back_as_the_schema_dumps_it() -> None:
    from quantdoctor.rules import matrix as M
    from quantdoctor.rules.schema import Rule

    assert tuple(Rule.model_fields) == M._RULE_FIELDS
    bare = Rule(id="a.b", severity="warn", message="m", source="s").model_dump(mode="json")
    assert {k: bare[k] for k in M._RULE_DEFAULTS} == M._RULE_DEFAULTS
    full = M._builtin_loaded()[0]
    stored = json.loads(json.dumps(M._compact(full)))
    assert len(json.dumps(stored["rules"])) < len(json.dumps(full["rules"])) * 0.9
    for rule, back in zip(full["rules"], stored["rules"], strict=True):
        again = M._expanded(back)
        assert again == rule and list(again) == list(rule), rule["id"]
    one, two = (
        M._expanded({**bare}),
        M._expanded({"id": "c.d", **M._compact({"rules": [bare]})["rules"][0]}),
    )
    assert (
        one["select"] is not two["select"]
        and one["select"]["engine"] is not two["select"]["engine"]
    )


def test_an_overlay_read_back_from_the_cache_gives_what_it_gave_when_built(
    tmp_path: Path, env_file: Path
) -> None:
    cache = tmp_path / "cache"
    overlay = tmp_path / "overlay.yaml"
    rules = [
        "- {id: o.every, when: {fact: gpu.memory_gb, lt: 100}, severity: warn, message: m,"
        " source: s}",
        "- {id: o.sig, select: {engine: [quanto], offload: [balanced]}, severity: block,"
        " message: 'on {gpu.name}', fix: pip install x, holds_for: {optimum-quanto: '>=0.2'},"
        " signatures: [{pattern: 'boom \\d{1,3}', source: s}], source: [s, t]}",
        "- {id: o.new, replaces: quanto.offload.balanced, select: {engine: [quanto]},"
        " severity: info, message: m, source: s}",
    ]
    overlay.write_text("rules:\n" + "\n".join(rules) + "\n", encoding="utf-8")
    args = [*CHECK, "--matrix", str(overlay)]
    built = run(cache, *args, env_file=env_file)
    assert built.returncode == 1, built.stderr
    assert len(list(store(cache).glob("overlay-*.json"))) == 1
    again = run(cache, *args, env_file=env_file)
    assert (again.returncode, again.stdout) == (built.returncode, built.stdout)
    listed = run(cache, "rules", "--json", "--matrix", str(overlay))
    assert listed.returncode == 0, listed.stderr
    assert (
        listed.stdout == run(tmp_path / "other", "rules", "--json", "--matrix", str(overlay)).stdout
    )


def _verdicts(cache: Path) -> list[Path]:
    return sorted(store(cache).glob("check-*.json"))


def test_a_verdict_is_read_back_until_an_input_changes(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    first = run(cache, *PLAN, env_file=env_file)
    assert first.returncode == 1, first.stderr
    assert len(_verdicts(cache)) == 1
    again = run(cache, *PLAN, env_file=env_file)
    assert (again.returncode, again.stdout) == (first.returncode, first.stdout)
    assert len(_verdicts(cache)) == 1  # read back, not made again
    # another fact: another entry, another verdict where the facts say so
    other = json.loads(env_file.read_text())
    other["packages"]["optimum-quanto"] = None
    env_file.write_text(json.dumps(other), encoding="utf-8")
    done = run(cache, *PLAN, env_file=env_file)
    assert len(_verdicts(cache)) == 2
    assert "quanto.not-installed" in done.stdout
    # an overlay that applies changes the key too
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("rules: []\n", encoding="utf-8")
    run(cache, *PLAN, "--matrix", str(overlay), env_file=env_file)
    assert len(_verdicts(cache)) == 3


def test_a_verdict_entry_for_other_inputs_is_not_used(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    first = run(cache, *PLAN, env_file=env_file)
    (entry,) = _verdicts(cache)

    def forge(data: dict[str, Any]) -> None:
        data["verdict"]["status"] = "ok"  # forged: the plan works
        data["inputs"]["plan"][1] = "qint4"  # ... but made for another plan

    _forge(entry, forge)
    done = run(cache, *PLAN, env_file=env_file)
    assert (done.returncode, done.stdout) == (first.returncode, first.stdout)


def test_a_failing_check_writes_no_verdict(tmp_path: Path, env_file: Path) -> None:
    cache = tmp_path / "cache"
    done = run(cache, *PLAN[:-1], "--dtype", "float13", "--json", env_file=env_file)
    assert done.returncode == 2 and "--dtype" in done.stderr
    assert _verdicts(cache) == []


def test_a_kept_report_prints_as_a_fresh_one(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for flags in ([], ["-v"]):
        fresh = run(cache, *flags, "--no-cache")
        first = run(cache, *flags)  # builds and keeps it, with its rendered lines
        again = run(cache, *flags)  # prints the kept lines
        assert fresh.stdout == first.stdout == again.stdout, flags
        assert fresh.returncode == first.returncode == again.returncode
    assert len(list(store(cache).glob("report-*.json"))) == 2  # the JSON, for --json
    printed = sorted(store(cache).glob("printed-*.json"))  # what text output reads
    assert len(printed) == 2
    assert all(read(e)[1]["lines"] for e in printed)  # type: ignore[index]
    # without its printed entry, a kept report is rendered again, to the same text
    for entry in printed:
        entry.unlink()
    assert run(cache, "-v").stdout == fresh.stdout


def test_forged_printed_lines_are_not_shown_as_this_machines(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run(cache)
    [entry] = store(cache).glob("printed-*.json")
    _forge(entry, lambda d: d["lines"].append([["FORGED", "red"]]))
    assert "FORGED" in run(cache).stdout  # the shape holds: the entry is this user's own
    _forge(entry, lambda d: d["inputs"]["env"].__setitem__("os", "FORGEDOS"))
    again = run(cache)
    assert (again.stdout, again.returncode) == (first.stdout, first.returncode)
    for bad in ({"exit_code": 7}, {"exit_code": True}, {"lines": [["x"]]}, {"lines": "x"}):
        entry.unlink()
        run(cache, "--no-cache")  # keeps nothing
        for kept in store(cache).glob("report-*.json"):
            kept.unlink()
        run(cache)  # keeps both afresh
        [entry] = store(cache).glob("printed-*.json")
        _forge(entry, lambda d, bad=bad: d.update(bad))  # type: ignore[misc]
        again = run(cache)
        assert (again.stdout, again.returncode) == (first.stdout, first.returncode), bad


def test_a_forged_slow_pattern_is_refused_not_run(tmp_path: Path, env_file: Path) -> None:
    # a cached rule's pattern is checked at its first search (a load needs no re): one
    # that could run for hours on a long fact is one line and exit 2, never a hang
    cache = tmp_path / "cache"
    assert run(cache, *CHECK, env_file=env_file).returncode == 1
    slow = {"fact": "gpu.name", "matches": "(a+)+$"}
    _forge(matrix_entry(cache), lambda d: [r.__setitem__("when", slow) for r in d["rules"]])
    done = run(cache, *CHECK, env_file=env_file)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("quantdoctor: error: a rule read back from quantdoctor's cache")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "when",
    [
        {"fact": "torch.version", "version": "not a specifier"},
        {"fact": "torch.version", "lt": "not a version"},
        {"fact": "torch.version", "version": ["a list"]},
    ],
    ids=["specifier", "compared", "wrong-type"],
)
def test_a_forged_operand_is_refused_at_its_first_use_or_rebuilt(
    tmp_path: Path, env_file: Path, when: dict[str, Any]
) -> None:
    # a cached rule's version specifiers and compared versions are checked at their first
    # use (a load parses none of them): a forged one is one line and exit 2; one of the
    # wrong type fails the load's own check, and the matrix is built afresh
    cache = tmp_path / "cache"
    first = run(cache, *CHECK, env_file=env_file)
    assert first.returncode == 1
    _forge(matrix_entry(cache), lambda d: [r.__setitem__("when", when) for r in d["rules"]])
    done = run(cache, *CHECK, env_file=env_file)
    if isinstance(next(v for k, v in when.items() if k != "fact"), list):
        assert (done.returncode, done.stdout) == (1, first.stdout)
        return
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("quantdoctor: error: a rule read back from quantdoctor's cache")
    assert done.stderr.count("\n") == 1


def test_the_codes_digest_follows_every_source_and_data_file(tmp_path: Path) -> None:
    """Every kept entry's key holds ``code_digest``: an edit anywhere in the package, even
    one that keeps the size, is a new key; compiled files are not the code."""
    import shutil

    from quantdoctor import _dirs

    shutil.copytree(
        ROOT / "quantdoctor", tmp_path / "quantdoctor", ignore=shutil.ignore_patterns("__pycache__")
    )

    def digest_now() -> tuple[str, ...]:  # what code_digest() hashes, of the copy
        fields: list[str] = []
        _dirs._code_stats(str(tmp_path / "quantdoctor"), fields)
        assert len(fields) > 3 * 50
        return tuple(fields)

    first = digest_now()
    assert digest_now() == first
    cache = tmp_path / "quantdoctor" / "rules" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "extra.cpython-311.pyc").write_bytes(b"x")
    assert digest_now() == first
    seen = {first}
    core = tmp_path / "quantdoctor" / "rules" / "core.py"
    stat = core.stat()
    os.utime(core, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same size
    seen.add(digest_now())
    with (tmp_path / "quantdoctor" / "matrix.yaml").open("a") as f:
        f.write("\n")
    seen.add(digest_now())
    (tmp_path / "quantdoctor" / "cli" / "new.py").write_text("", encoding="utf-8")
    seen.add(digest_now())
    assert len(seen) == 4
