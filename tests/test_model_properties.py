"""Property tests of the model's pure logic: JSON round trips, sizes, cpusets,
and Go's path arithmetic."""

from __future__ import annotations

import json
import posixpath
import re

import pytest
from hypothesis import assume, example, given, settings, strategies as st

import volt_enforce as ve
from volt_enforce import (
    CAPABILITIES,
    Compatibility,
    IsolationConfig,
    LandlockAccess,
    LandlockLogging,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    MissingPaths,
    NetworkConfig,
    NetworkMode,
    PolicyError,
    PortForward,
    ResourceLimits,
    SeccompProfile,
)
from volt_enforce.model import _go_clean, _go_join

settings.register_profile("volt", max_examples=100, deadline=None)
settings.load_profile("volt")

# ── strategies for valid configs ─────────────────────────────────────────────

# any character a file name may hold (no NUL, no lone surrogates)
_name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/")
paths = st.lists(st.text(_name_chars, min_size=1, max_size=8), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
access = st.integers(1, int(LandlockAccess.all())).map(LandlockAccess)
rules = st.builds(LandlockRule, path=paths, access=access, optional=st.booleans())
ports = st.lists(st.integers(0, 65535), max_size=4)
flag_lists = lambda cls: st.lists(st.sampled_from(list(cls)), unique=True).map(  # noqa: E731
    lambda ms: [m.name.lower() for m in ms]
)
landlock = st.builds(
    LandlockPolicy,
    rules=st.lists(rules, max_size=5),
    bind_tcp=st.none() | ports,
    connect_tcp=st.none() | ports,
    scopes=flag_lists(LandlockScope),
    logging=flag_lists(LandlockLogging),
    compatibility=st.sampled_from(list(Compatibility)),
    missing_paths=st.sampled_from(list(MissingPaths)),
    runtime=st.booleans(),
)
sizes = st.one_of(
    st.just(""), st.sampled_from(["max", "infinity"]),
    st.builds(lambda n, s: f"{n}{s}", st.integers(0, 1 << 20),
              st.sampled_from(list("KMGTkmgt") + [""])),
)


def _cpuset(cpus: set[int]) -> str:
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


cpusets = st.sets(st.integers(0, 8191), max_size=20).map(_cpuset)
quotas = st.just("") | st.builds(lambda n, f: f"{n}{f}%", st.integers(1, 10000),
                                 st.sampled_from(["", ".5", ".25", ".0"]))
resources = st.builds(
    ResourceLimits,
    memory_hard=sizes, memory_soft=sizes, cpu_weight=st.integers(0, 10000), cpu_set=cpusets,
    io_weight=st.integers(0, 10000), pids_max=st.integers(0, 2**31 - 1), cpu_quota=quotas,
    memory_swap=sizes,
)
forwards = st.builds(PortForward, host_port=st.integers(1, 65535),
                     container_port=st.integers(1, 65535),
                     protocol=st.sampled_from(["", "tcp", "udp"]))
ifnames = st.just("") | st.from_regex(r"[A-Za-z0-9_.@-]{1,15}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
network = st.builds(
    NetworkConfig,
    mode=st.none() | st.sampled_from(list(NetworkMode)),
    bridge=ifnames,
    port_forwards=st.lists(forwards, max_size=4),
    dns=st.lists(st.ip_addresses().map(str), max_size=3),
)
configs = st.builds(
    IsolationConfig,
    landlock=st.none() | landlock,
    seccomp=st.none() | st.sampled_from(list(SeccompProfile)) | paths.filter(lambda p: p != "/"),
    resources=st.none() | resources,
    network=st.none() | network,
    private_users=st.booleans(),
    read_only_fs=st.booleans(),
    capabilities=st.none() | st.lists(st.sampled_from(sorted(CAPABILITIES)), unique=True),
)


def _fold_keys(doc, fold):
    if isinstance(doc, dict):
        return {fold(k): _fold_keys(v, fold) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_fold_keys(v, fold) for v in doc]
    return doc


# ── JSON round trips ─────────────────────────────────────────────────────────


@given(configs)
def test_json_round_trip(cfg):
    text = cfg.to_json()
    again = IsolationConfig.from_json(text)
    assert again == cfg
    assert again.to_json() == text
    assert IsolationConfig.from_json(cfg.to_json(indent=2)) == cfg
    # the wire text is plain UTF-8 JSON without the characters Go escapes
    text.encode("utf-8")
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == cfg.to_dict()


@given(configs, st.sampled_from([str.lower, str.upper, str.swapcase]))
def test_keys_in_any_case_load_the_same(cfg, fold):
    doc = _fold_keys(json.loads(cfg.to_json()), fold)
    assert IsolationConfig.from_dict(doc) == cfg


@given(configs)
def test_nspawn_args_are_consistent_with_the_config(cfg):
    args = cfg.nspawn_args()
    props = cfg.resources.systemd_properties() if cfg.resources else []
    assert args[: len(props)] == ["--property=" + p for p in props]
    assert ("--drop-capability=all" in args) == (cfg.seccomp == SeccompProfile.STRICT)
    assert ("--system-call-filter=~" in args) == (cfg.seccomp == SeccompProfile.UNCONFINED)
    assert ("--private-users=pick" in args) == cfg.private_users
    assert ("--read-only" in args) == cfg.read_only_fs
    # the .nspawn file: one line per key, no section the format lacks
    block = cfg.nspawn_config_block("c1")
    assert "[ResourceControl]" not in block
    assert all("=" in line or line.startswith("[") or not line for line in block.splitlines())


# ── sizes ────────────────────────────────────────────────────────────────────

SIZE_VECTORS = [
    ("0", 0), ("1", 1), ("1023", 1023), ("1K", 1024), ("1k", 1024), ("512M", 512 << 20),
    ("2G", 2 << 30), ("1T", 1 << 40), ("007", 7), ("9223372036854775807", 2**63 - 1),
    ("8388607T", 8388607 << 40), ("max", None), ("infinity", None),
]
BAD_SIZES = ["", "12Q", "1.5G", "-1", "+1", "1 G", " 1G", "1G ", "1G\n", "1KB", "0x10", "G",
             "MAX", "inf", "1e3", "\u0661", "1\u0660", "8388608T", "9223372036854775808"]


@pytest.mark.parametrize("text,value", SIZE_VECTORS)
def test_parse_size_vectors(text, value):
    assert ve.parse_size(text) == value


@pytest.mark.parametrize("text", BAD_SIZES)
def test_parse_size_rejects(text):
    with pytest.raises(PolicyError) as ei:
        ve.parse_size(text, "Resources.MemoryHard")
    assert ei.value.field == "Resources.MemoryHard" and ei.value.value == text


@given(st.integers(0, 2**63 - 1), st.sampled_from([("", 1), ("K", 1 << 10), ("M", 1 << 20),
                                                   ("G", 1 << 30), ("T", 1 << 40)]),
       st.booleans())
def test_parse_size_scales_by_1024(n, suffix, lower):
    unit, mult = suffix
    text = f"{n}{unit.lower() if lower else unit}"
    if n * mult < 2**63:
        assert ve.parse_size(text) == n * mult
    else:
        with pytest.raises(PolicyError, match="too large"):
            ve.parse_size(text)


@given(st.text(max_size=12))
@example("1G\n")
@example("\uff11G")  # FULLWIDTH DIGIT ONE
def test_parse_size_accepts_exactly_the_grammar(text):
    grammar = re.fullmatch(r"[0-9]+[KMGTkmgt]?", text, flags=re.ASCII) is not None
    if text in ("max", "infinity"):
        assert ve.parse_size(text) is None
        return
    try:
        n = ve.parse_size(text)
    except PolicyError as exc:
        assert exc.field == "size" and exc.value == text
        assert not grammar or "too large" in exc.reason
    else:
        assert grammar and isinstance(n, int) and 0 <= n < 2**63


# ── cpusets ──────────────────────────────────────────────────────────────────

CPUSET_VECTORS = [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0,2", [0, 2]), ("3,1", [1, 3]),
                  ("1-1", [1]), ("0-2,1-3", [0, 1, 2, 3]), ("8191", [8191]), ("00-01", [0, 1])]
BAD_CPUSETS = ["", "-1", "1-", "1--2", "0-3-5", ",0", "0,", "0,,1", "a", "0 ", "0-3\n",
               "3-0", "2,5-4", "8192", "0-99999999999", "\u0660"]


@pytest.mark.parametrize("text,cpus", CPUSET_VECTORS)
def test_parse_cpuset_vectors(text, cpus):
    assert ve.parse_cpuset(text) == cpus


@pytest.mark.parametrize("text", BAD_CPUSETS)
def test_parse_cpuset_rejects(text):
    with pytest.raises(PolicyError) as ei:
        ve.parse_cpuset(text, "Resources.CPUSet")
    assert ei.value.field == "Resources.CPUSet" and ei.value.value == text


@given(st.sets(st.integers(0, 8191), min_size=1, max_size=64))
def test_parse_cpuset_inverts_formatting(cpus):
    text = _cpuset(cpus)
    assert ve.parse_cpuset(text) == sorted(cpus)
    # any order and overlap of the same ranges gives the same set
    parts = text.split(",")
    assert ve.parse_cpuset(",".join(reversed(parts + parts))) == sorted(cpus)


@given(st.lists(st.tuples(st.integers(0, 9000), st.integers(0, 9000)), min_size=1, max_size=5))
def test_parse_cpuset_ranges(ranges):
    text = ",".join(f"{a}-{b}" for a, b in ranges)
    if any(a > b for a, b in ranges) or any(b >= 8192 for _, b in ranges):
        with pytest.raises(PolicyError):
            ve.parse_cpuset(text)
    else:
        expect = sorted({c for a, b in ranges for c in range(a, b + 1)})
        assert ve.parse_cpuset(text) == expect


# ── Go's filepath.Clean and Join ─────────────────────────────────────────────

# posixpath.normpath keeps exactly two leading slashes (POSIX leaves "//x"
# implementation-defined); Go's Clean makes them one. Elsewhere they agree.
GO_ONLY = [("//", "/"), ("//a", "/a"), ("//a/b/..", "/a"), ("//..", "/"), ("//./a", "/a")]


@pytest.mark.parametrize("inp,out", GO_ONLY)
def test_go_clean_differs_from_normpath_on_double_slash(inp, out):
    assert _go_clean(inp) == out
    assert posixpath.normpath(inp) == "/" + out  # the difference this vector pins


path_text = st.lists(st.sampled_from(["", ".", "..", "a", "b", "..."]), max_size=8).map("/".join)


@given(path_text)
@example("")
@example("/")
@example("///a")
def test_go_clean_agrees_with_normpath(p):
    if p.startswith("//") and not p.startswith("///"):
        assert _go_clean(p) == _go_clean(p[1:])
    else:
        assert _go_clean(p) == posixpath.normpath(p)


@given(path_text)
def test_go_clean_is_idempotent_and_canonical(p):
    c = _go_clean(p)
    assert _go_clean(c) == c
    assert "//" not in c and "/./" not in c and not c.endswith("/.")
    assert c == "/" or not c.endswith("/")
    if p.startswith("/"):
        assert c.startswith("/") and ".." not in c.split("/")


@given(path_text, path_text)
def test_go_join_agrees_with_posixpath(a, b):
    assume(a and not a.startswith("//") and b and not b.startswith("/"))
    assert _go_join(a, b) == posixpath.normpath(posixpath.join(a, b))


@given(path_text, path_text)
def test_go_join_keeps_an_absolute_second_part_under_the_first(a, b):
    # unlike os.path.join, Go's Join never lets a later absolute part win
    a = "/" + a
    joined = _go_join(a, "/" + b)
    assert joined == _go_clean(a + "/" + b)


@given(paths)
def test_presets_stay_under_any_absolute_rootfs(rootfs):
    root = _go_clean(rootfs)
    for pol in (ve.server_policy(rootfs), ve.desktop_policy(rootfs)):
        for rule in pol.rules:
            assert rule.path == _go_join(root, posixpath.basename(rule.path))
            assert posixpath.dirname(rule.path) == root
