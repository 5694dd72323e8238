"""The seed's JSON wire format: documents written and read by Go's encoding/json."""

from __future__ import annotations

import copy
import json
import os

import pytest

import volt_enforce as ve
from volt_enforce import (
    Compatibility,
    IsolationConfig,
    LandlockAccess,
    LandlockPolicy,
    LandlockRule,
    LandlockScope,
    MissingPaths,
    NetworkConfig,
    PolicyError,
    PortForward,
    ResourceLimits,
)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "golden", "seed.json"), encoding="utf-8") as _f:
    GOLDEN = json.load(_f)

GO_DOCS = [(c["name"], c["json"]) for c in GOLDEN["isolation"] + GOLDEN["documents"]]
GO_INDENTED = [(c["name"], c["json_indent"]) for c in GOLDEN["isolation"] + GOLDEN["documents"]]


@pytest.mark.parametrize("name,doc", GO_DOCS, ids=[n for n, _ in GO_DOCS])
def test_go_document_loads_unchanged_and_writes_the_same_bytes(name, doc):
    cfg = IsolationConfig.from_json(doc)
    assert cfg.to_json() == doc
    # str, bytes and an already-decoded mapping are all accepted
    assert IsolationConfig.from_json(doc.encode()) == cfg
    assert IsolationConfig.from_json(json.loads(doc)) == cfg
    assert IsolationConfig.from_dict(json.loads(doc)) == cfg
    assert json.loads(cfg.to_json()) == cfg.to_dict()


@pytest.mark.parametrize("name,doc", GO_INDENTED, ids=[n for n, _ in GO_INDENTED])
def test_go_indented_document_round_trips(name, doc):
    # json.MarshalIndent(v, "", "  ") == to_json(indent=2)
    cfg = IsolationConfig.from_json(doc)
    assert cfg.to_json(indent=2) == doc


def _repeats_a_field(text: str) -> bool:
    """Whether some object of the document has two keys that Go folds together."""
    found = False

    def hook(pairs):
        nonlocal found
        keys = [k.lower().replace("\u017f", "s") for k, _ in pairs]
        found = found or len(set(keys)) < len(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


_GO_READS = [c for c in GOLDEN["decode"] if "output" in c]


@pytest.mark.parametrize("case", [c for c in _GO_READS if not _repeats_a_field(c["input"])],
                         ids=lambda c: c["input"][:40])
def test_what_go_accepts_python_reads_the_same(case):
    # each input went through json.Unmarshal + json.Marshal in Go
    assert IsolationConfig.from_json(case["input"]).to_json() == case["output"]


@pytest.mark.parametrize("case", [c for c in _GO_READS if _repeats_a_field(c["input"])],
                         ids=lambda c: c["input"][:40])
def test_what_go_reads_from_repeated_keys_python_refuses(case):
    # Go lets the last key for a field win; a reader that keeps the first sees
    # another policy in the same bytes, so the document is refused
    with pytest.raises(PolicyError, match="may appear once"):
        IsolationConfig.from_json(case["input"])


@pytest.mark.parametrize("case", [c for c in GOLDEN["decode"] if "error" in c],
                         ids=lambda c: c["input"][:40])
def test_what_go_rejects_python_rejects(case):
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json(case["input"])
    assert ei.value.field  # always names where


def test_part_documents_round_trip():
    for case in GOLDEN["resources"]:
        assert ResourceLimits.from_json(case["json"]).to_json() == case["json"]
    for case in GOLDEN["network"]:
        assert NetworkConfig.from_json(case["json"]).to_json() == case["json"]
    for case in GOLDEN["presets"][:2]:
        doc = json.dumps(case["server"], separators=(",", ":"))
        assert LandlockPolicy.from_json(doc).to_json() == doc
    pf = PortForward(host_port=1, container_port=65535, protocol="udp")
    assert PortForward.from_dict(json.loads(json.dumps(pf.to_dict()))) == pf
    rule = LandlockRule(path="/x", access=LandlockAccess.READ_EXEC)
    assert LandlockRule.from_dict(rule.to_dict()) == rule


# Paths of main.go's stringPaths; b"\xff\xfe" is invalid UTF-8, which Python
# file names carry as surrogate escapes and Go writes as \ufffd per byte.
STRING_PATHS = [
    "/srv/<a>&b",
    "/srv/line\u2028sep\u2029para",
    "/srv/caf\u00e9/\U0001F600",
    "/srv/tab\there\nnl\rcr\x01\x1f\x7f",
    '/srv/quote"back\\slash',
    os.fsdecode(b"/srv/\xff\xfebad"),
]


def test_string_escapes_match_go():
    pol = LandlockPolicy(rules=[LandlockRule(path=p, access=LandlockAccess.READ_ONLY)
                                for p in STRING_PATHS])
    assert pol.to_json() == GOLDEN["strings"]["json"]
    assert pol.to_json(indent=2) == GOLDEN["strings"]["json_indent"]
    # everything but the invalid bytes comes back
    back = LandlockPolicy.from_json(pol.to_json())
    assert [r.path for r in back.rules[:-1]] == STRING_PATHS[:-1]
    assert back.rules[-1].path == "/srv/\ufffd\ufffdbad"
    assert pol.to_json().encode("utf-8")  # no lone surrogate is left in the text


def test_backspace_and_formfeed_are_written_as_go_1_22_does():
    # Go before 1.22 wrote \u0008 and \u000c; since 1.22 it writes \b and \f,
    # and both forms decode to the same string
    pol = LandlockPolicy(rules=[LandlockRule(path="/a\b\fz", access=1)])
    assert pol.to_json() == '{"Rules":[{"Path":"/a\\b\\fz","Access":1}]}'
    assert LandlockPolicy.from_json('{"Rules":[{"Path":"/a\\u0008\\u000cz","Access":1}]}') == pol


def test_null_document_is_the_zero_value():
    # what Go writes for a nil *IsolationConfig, and reads back as the zero value
    assert IsolationConfig.from_json("null") == IsolationConfig()
    assert ResourceLimits.from_json("null") == ResourceLimits()
    assert NetworkConfig.from_json("null") == NetworkConfig()
    assert LandlockPolicy.from_json("null") == LandlockPolicy()


def test_empty_list_reads_like_null_and_is_written_as_null():
    # Go keeps [] and null apart on re-encoding; both decode to a slice of
    # length 0 and every method treats them alike. The Python model has one
    # empty list, written as Go writes a nil slice.
    a = IsolationConfig.from_json(
        '{"Landlock":{"Rules":[]},"Network":{"PortForwards":[],"DNS":[]}}')
    b = IsolationConfig.from_json('{"Landlock":{"Rules":null},"Network":{"PortForwards":null}}')
    assert a == b
    doc = json.loads(a.to_json())
    assert doc["Landlock"]["Rules"] is None
    assert doc["Network"]["PortForwards"] is None and doc["Network"]["DNS"] is None


def test_keys_match_case_insensitively_and_with_unicode_folding():
    cfg = IsolationConfig.from_json('{"LANDLOCK":{"rUlEs":[{"pATH":"/usr","access":5}]}}')
    assert cfg.landlock.rules[0].path == "/usr"
    # U+212A KELVIN SIGN folds to k, U+017F LONG S to s, as in Go
    cfg = IsolationConfig.from_json('{"Landloc\u212a":{},"\u017feccomp":"strict"}')
    assert cfg.landlock == LandlockPolicy() and cfg.seccomp == ve.SeccompProfile.STRICT
    # but not other look-alikes: U+00DF folds to "ss" only in full case folding
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json('{"Landlock":{"Rules":[{"Path":"/u","Acce\u00df":1}]}}')
    assert ei.value.field == "Landlock.Rules[0].Acce\u00df"


@pytest.mark.parametrize("doc,field", [
    ('{"Seccomp":"strict","Seccomp":"unconfined"}', "Seccomp"),
    ('{"seccomp":"strict","Seccomp":"default"}', "Seccomp"),
    # Go reads "unconfined" here (the later key folds onto Seccomp), other readers "strict"
    ('{"Seccomp":"strict","\u017feccomp":"unconfined"}', "\u017feccomp"),
    ('{"Resources":{"PIDsMax":1,"pidsmax":2}}', "Resources.pidsmax"),
    ('{"Resources":{"PIDsMax":1},"Resources":{"PIDsMax":3}}', "Resources"),
    ('{"Landloc\u212a":{},"Landlock":null}', "Landlock"),
])
def test_two_keys_for_one_field_are_an_error(doc, field):
    with pytest.raises(PolicyError) as ei:
        IsolationConfig.from_json(doc)
    assert ei.value.field == field
    assert "may appear once" in ei.value.reason


def test_null_fields_leave_the_zero_value_including_new_fields():
    cfg = IsolationConfig.from_json(
        '{"Landlock":{"Rules":null,"BindTCP":null,"Scopes":null,"Compatibility":null,'
        '"Runtime":null},"Capabilities":null}'
    )
    assert cfg.landlock == LandlockPolicy()
    assert cfg.landlock.runtime is True and cfg.capabilities is None


def test_new_fields_use_new_keys_and_are_optional():
    pol = LandlockPolicy(
        rules=[LandlockRule(path="/data", access=LandlockAccess.READ_WRITE, optional=True)],
        bind_tcp=[8080], connect_tcp=[],
        scopes=LandlockScope.SIGNAL | LandlockScope.ABSTRACT_UNIX_SOCKET,
        logging=["new_exec_on"], compatibility="hard_requirement", missing_paths="skip",
        runtime=False,
    )
    cfg = IsolationConfig(landlock=pol, resources=ResourceLimits(cpu_quota="25%"),
                          capabilities=["cap_net_bind_service", "KILL"])
    doc = json.loads(cfg.to_json())
    assert doc["Landlock"] == {
        "Rules": [{"Path": "/data", "Access": int(LandlockAccess.READ_WRITE), "Optional": True}],
        "BindTCP": [8080], "ConnectTCP": [], "Scopes": ["abstract_unix_socket", "signal"],
        "Logging": ["new_exec_on"], "Compatibility": "hard_requirement",
        "MissingPaths": "skip", "Runtime": False,
    }
    assert doc["Capabilities"] == ["NET_BIND_SERVICE", "KILL"]
    assert doc["Resources"]["CPUQuota"] == "25%"
    again = IsolationConfig.from_json(cfg.to_json())
    assert again == cfg and again.to_json() == cfg.to_json()
    assert again.landlock.compatibility is Compatibility.HARD_REQUIREMENT
    assert again.landlock.missing_paths is MissingPaths.SKIP
    # at their defaults the new keys are not written: the seed's bytes stay
    plain = ve.default_isolation("/srv/rootfs")
    assert set(json.loads(plain.to_json())) == {
        "Landlock", "Seccomp", "Resources", "Network", "PrivateUsers", "ReadOnlyFS"}


def test_flags_accept_ints_and_write_names():
    pol = LandlockPolicy.from_json('{"Scopes":3,"Logging":["SAME_EXEC_OFF"]}')
    assert pol.scopes == LandlockScope.ABSTRACT_UNIX_SOCKET | LandlockScope.SIGNAL
    assert json.loads(pol.to_json())["Logging"] == ["same_exec_off"]


def test_oci_profile_path_round_trips_as_seccomp_string():
    cfg = IsolationConfig.from_json('{"Seccomp":"/etc/volt/seccomp.json"}')
    assert cfg.seccomp == "/etc/volt/seccomp.json"
    assert json.loads(cfg.to_json())["Seccomp"] == "/etc/volt/seccomp.json"
    assert cfg.nspawn_args() == []


def test_loading_does_not_touch_the_input():
    doc = json.loads(GOLDEN["default_isolation"]["json"])
    before = copy.deepcopy(doc)
    cfg = IsolationConfig.from_dict(doc)
    assert doc == before
    cfg.landlock.rules[0].path = "/elsewhere"
    assert doc == before


def test_config_does_not_share_lists_with_its_caller():
    rules = [LandlockRule(path="/usr", access=1)]
    dns = ["1.1.1.1"]
    pol = LandlockPolicy(rules=rules)
    net = NetworkConfig(mode="private", bridge="br0", dns=dns)
    rules.append(LandlockRule(path="/tmp", access=1))
    dns.append("not an address")
    assert len(pol.rules) == 1 and net.dns == ["1.1.1.1"]
