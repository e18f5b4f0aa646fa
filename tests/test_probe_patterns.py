"""The probe reads names, versions and GPU facts with ``str`` methods (``re`` costs a
process half its start-up); each reader answers as the pattern it replaces, on the
spellings found in the wild and on random text built from the characters that matter."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from quantdoctor.doctor import _probe_packages as pk
from quantdoctor.doctor import _probe_util as pu
from quantdoctor.rules.vocab import canonical_name

ALPHABET = "0123456789abcfgxrdvpost.-_+! \t\n:=\"'AZé٣²{}"


def _texts(
    seed: int, words: list[str], n: int = 4000, alphabet: str = ALPHABET, joined: bool = False
) -> list[str]:
    """``words``, then ``n`` of them with up to three characters of ``alphabet`` inserted,
    deleted or replaced (``joined``: two words run together, as in a fix or a command)."""
    rng = random.Random(seed)
    out = list(words)
    for _ in range(n):
        base = rng.choice(words)
        if joined:
            base += rng.choice(["", " ", "\n"]) + rng.choice(words)
        chars = list(base)
        for _ in range(rng.randrange(4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(chars) + 1)
            if op == 0:
                chars.insert(pos, rng.choice(alphabet))
            elif chars and op == 1:
                del chars[min(pos, len(chars) - 1)]
            elif chars:
                chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
        out.append("".join(chars))
    return out


VERSIONS = [
    "2.13.0",
    "0.45.1",
    "2.13.0+cu126",
    "1.0rc1",
    "1!2.0",
    "v1.0",
    " 1.0 ",
    "1.0.post2.dev3",
]
VERSIONS += ["1.0+local.Label", "1.0-1", "1.0\n", "1..0", "", "1.0+", "٣.٣", "2.13.0+cu126.x-y"]


def test_is_version_is_the_pep440_pattern() -> None:
    pattern = re.compile(pu._PEP440, re.VERBOSE | re.IGNORECASE)
    for text in _texts(1, VERSIONS):
        assert pu.is_version(text) == bool(pattern.match(text)), repr(text)


def test_compute_capability_and_gfx_are_their_patterns() -> None:
    for text in _texts(2, ["8.9", "12.0", "100.100", "1000.1", "8.", ".9", "8.9\n", "٣.٣", "89"]):
        assert pu._is_cc(text) == bool(re.match(r"^\d{1,3}\.\d{1,3}$", text)), repr(text)
    for text in _texts(
        3, ["gfx90a", "gfx1100", "gfx11001", "gfx9", "gfx90a\n", "GFX90A", "gfx90g"]
    ):
        assert pu.is_gfx(text) == bool(re.match(r"^gfx[0-9a-f]{3,5}$", text)), repr(text)


def test_distribution_names_are_their_patterns() -> None:
    dist_info = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.dist-info$")
    egg_info = re.compile(pk._EGG_INFO)
    entries = ["torch-2.13.0.dist-info", "optimum_quanto-0.2.7.dist-info", "a-b-1.0.dist-info"]
    entries += [
        "x-.dist-info",
        "-1.dist-info",
        "x-1.dist-info\n",
        "x\ny-1.dist-info",
        "x-1\n.dist-info",
    ]
    entries += ["foo-1.0-py3.11.egg-info", "foo.egg-info", "foo-py3.egg-info", "foo--py3.egg-info"]
    entries += ["foo-1.0-linux.egg-info", "torch", "__pycache__", "x.pth", "a-1.dist-info.bak"]
    entries += ["a-b-c-py3.egg-info", "foo-1-py٣.egg-info", "foo.egg-info\n", "-foo.egg-info"]
    entries += ["foo-.egg-info", "foo-1.0-py3\n.egg-info", "foo-1-py3-x.egg-info", "f\no.egg-info"]
    for entry in _texts(4, entries):
        m = dist_info.match(entry) or egg_info.match(entry)
        assert pk.dist_name(entry) == (m.group("name") if m else None), repr(entry)
    for name in _texts(5, ["Optimum_Quanto", "a--b", "_x.", "torch", "A.B-C_D", "-.-"]):
        assert canonical_name(name) == re.sub(r"[-_.]+", "-", name).lower(), repr(name)


def test_version_py_lines_are_the_assignment_pattern() -> None:
    pattern = re.compile(pk._ASSIGN)
    lines = ["__version__ = '2.13.0+cpu'", "cuda: Optional[str] = None", "debug = False"]
    lines += ["git_version = 'abc'", "x=1", "x =  ", "é = 'a'", " x = 1", "x : = 1", "x:a=b=c"]
    lines += ["from typing import Optional", "x = 'a'\t", "x\t= 1", "1x = 2", "x = ' a '"]
    lines += ["x = a\nb", "x = a\n", "x:\n= 1", "x = 'a'\n\n"]
    for line in _texts(6, lines):
        m = pattern.match(line)
        assert pk._assignment(line) == ((m.group(1), m.group(2)) if m else None), repr(line)


def test_rule_ids_names_and_placeholders_are_their_patterns() -> None:
    from quantdoctor.rules import core, template, vocab

    ids = ["quanto.offload.balanced", "a.b", "a", "a.", ".a", "A.b", "a.b-c.d_e", "a-b.c"]
    ids += ["a.b\n", "a..b", "a.b\n\n", "ä.b", "sdnq.te.unsaved"]
    for text in _texts(7, ids):
        assert vocab.is_rule_id(text) == bool(re.match(r"^[a-z0-9_]+(\.[a-z0-9_\-]+)+$", text))
    names = ["quanto", "Q4_K", "float8_e4m3fn", "-x", "x y", "", "a\n", "é", "nf4.v2"]
    for text in _texts(8, names):
        ok = bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", text))
        try:
            core.check_name("scheme", text)
            said = True
        except ValueError:
            said = False
        assert said == ok, repr(text)
    texts = ["{gpu.name} has {gpu.cuda_cc}", "{packages.diffusers-x}", "{a}{b}", "{{x}}", "{ x }"]
    texts += ["{A}", "{a.}", "{a..b}", "{plan.scheme} {", "}{a}", "x{a.b_c-d.0}y", "{}"]
    for text in _texts(9, texts, 2000):
        want = re.sub(template.TEMPLATE_PATTERN, lambda m: f"<{m.group(1)}>", text)
        assert template.fill(text, lambda key: f"<{key}>") == want, repr(text)


def test_metadata_lines_are_splitlines_read_lazily() -> None:
    rng = random.Random(10)
    breaks = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", ""]
    for _ in range(3000):
        text = "".join(
            rng.choice(["Version: 1.0", "Name: x", " ", "a" * rng.randrange(12)])
            + rng.choice(breaks)
            for _ in range(rng.randrange(12))
        )
        head = rng.randrange(1, 40)
        assert list(pk._lines(text, head)) == text.splitlines(), (repr(text), head)


def test_a_site_dir_is_indexed_as_every_entry_read(tmp_path: Path) -> None:
    """Only entries ending in -info are read; the index is the one reading them all gives."""
    rng = random.Random(11)
    names = ["torch-2.13.0.dist-info", "Foo_Bar-1.0.dist-info", "foo.bar-2.0.dist-info"]
    names += ["nncf-2.0-py3.11.egg-info", "x.egg-info", "torch", "six.py", "a-info", "-info"]
    names += ["y-1.0.dist-info.bak", "z-1.dist-infox", "Q-1.0.DIST-INFO", "p-1.0.dist-info "]
    names += ["w-1.0.dist-info\n", "v-2.egg-info\n", "u-1.0.dist-info\n\n"]
    for round_ in range(30):
        site = tmp_path / f"site{round_}"
        site.mkdir()
        for name in rng.sample(names, rng.randrange(len(names))):
            (site / name).mkdir()
        for i in range(rng.randrange(6)):  # near misses the fuzzer makes up
            word = rng.choice(names)
            cut = rng.randrange(len(word))
            (site / f"{word[:cut]}{rng.choice('-_.')}{word[cut:]}{i}").mkdir(exist_ok=True)
        every: dict[str, str] = {}
        for entry in sorted(os.listdir(site)):
            raw = pk.dist_name(entry)
            if raw is not None:
                every.setdefault(canonical_name(raw), os.path.join(site, entry))
        index = pk.index_distributions([str(site)])
        assert {k: d.path for k, d in index.items()} == every, sorted(os.listdir(site))
        wanted = set(rng.sample([*sorted(every), "absent"], min(3, len(every) + 1)))
        some = pk.index_distributions([str(site)], wanted=wanted)
        assert {k: d.path for k, d in some.items()} == {
            k: p for k, p in every.items() if k in wanted
        }


def test_the_reports_fix_readers_are_their_patterns() -> None:
    from quantdoctor.doctor import report

    fixes = ["use model offload", "model-level offload", "enable_model_cpu_offload", "offload"]
    fixes += ["group offloading", "xmodel offload", "model offload_x", "Model offload", "é"]
    fixes += ["balanced level offload", "sequential  offload", "enable_group_offload()"]
    fixes += ["enable_sequential_cpu_offload", "group offload٣", "_group offload", "model offload."]
    for text in _texts(12, fixes, 6000, "ml -_.\nxé٣offload", joined=True):
        want = {w for m in re.finditer(report._OFFLOAD_WORDS, text) for w in m.groups() if w}
        assert report.offloads_named(text) == want, repr(text)
    calls = ["pipe.enable_model_cpu_offload()", "pipe.transformer.enable_group_offload(a, b=1)"]
    calls += ["pipe.x(\n)", "(a)\n", "a(b)(c)", "pipe.(x)", "x(y)\n\n", "pipe.transformer(x)", "()"]
    for text in _texts(13, calls, 6000, "()\n.pipe x", joined=True):
        assert report._bare_call(text) == re.sub(report._CALL_DRESS, "", text), repr(text)
    installs = ["pip install torchao", "python -m pip install -U diffusers", "pip install", "x"]
    installs += ['"C:/a b/python.exe" -m pip install "auto-round>=0.13.0"', "pip install a b"]
    installs += ["pip install -U --pre x", "pip install - x", "pip install -\u00a0x y", " -U"]
    for text in _texts(14, installs, 6000, " \t\n\u00a0pi-x", joined=True):
        m = re.fullmatch(r"(.*pip install(?: -\S+)*) (\S+)", text)
        assert report._install_parts(text) == (m.groups() if m else None), repr(text)
