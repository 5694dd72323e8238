// Command seed_golden prints, as JSON, what the seed's Go model produces for a
// fixed set of inputs; tests/test_model*.py compare the Python model with it.
//
// It imports the seed's package as voltseedgolden/hybrid, which exists only in
// the temporary module that generate.sh assembles: the seed is never copied
// into this repository.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"voltseedgolden/hybrid"
)

func marshal(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func marshalIndent(v interface{}) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// The rootfs values the presets are generated for; "" and relative ones show
// what filepath.Join does with them.
var rootfsCases = []string{"/", "/srv/rootfs", "", "relative/x", "/a/../b/", "//srv//rootfs/", "/srv/rootfs/."}

func presets() []map[string]interface{} {
	var out []map[string]interface{}
	for _, r := range rootfsCases {
		out = append(out, map[string]interface{}{
			"rootfs":  r,
			"server":  hybrid.ServerPolicy(r),
			"desktop": hybrid.DesktopPolicy(r),
		})
	}
	return out
}

func resources() []map[string]interface{} {
	cases := []*hybrid.ResourceLimits{
		hybrid.DefaultResourceLimits(),
		{},
		{MemoryHard: "512M", MemorySoft: "256M", CPUWeight: 500, CPUSet: "0-3", IOWeight: 200, PIDsMax: 100},
		{MemoryHard: "max", CPUWeight: 1, IOWeight: 10000, CPUSet: "0,2"},
		{MemorySoft: "1T", PIDsMax: 1},
		{CPUSet: "1", IOWeight: 1},
		{MemoryHard: "1073741824", CPUWeight: 10000},
	}
	var out []map[string]interface{}
	for _, r := range cases {
		out = append(out, map[string]interface{}{
			"limits":     r,
			"json":       marshal(r),
			"properties": r.SystemdProperties(),
		})
	}
	return out
}

var forwards = []hybrid.PortForward{
	{HostPort: 8080, ContainerPort: 80},
	{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	{HostPort: 443, ContainerPort: 8443, Protocol: "tcp"},
}

func networks() []map[string]interface{} {
	cases := []*hybrid.NetworkConfig{
		hybrid.DefaultNetworkConfig(),
		{Mode: hybrid.NetworkPrivate, Bridge: "voltbr0", PortForwards: forwards, DNS: []string{"9.9.9.9"}},
		{Mode: hybrid.NetworkPrivate, Bridge: "br-test"},
		{Mode: hybrid.NetworkHost},
		{Mode: hybrid.NetworkHost, PortForwards: forwards},
		{Mode: hybrid.NetworkNone},
		{Mode: hybrid.NetworkNone, PortForwards: forwards, DNS: []string{"2606:4700:4700::1111"}},
		{},
		{PortForwards: forwards, Bridge: "ignored0"},
	}
	var out []map[string]interface{}
	for _, n := range cases {
		out = append(out, map[string]interface{}{
			"config": n,
			"json":   marshal(n),
			"args":   n.NspawnNetworkArgs(),
		})
	}
	return out
}

type namedConfig struct {
	name string
	cfg  *hybrid.IsolationConfig
}

func isolationCases() []namedConfig {
	with := func(f func(c *hybrid.IsolationConfig)) *hybrid.IsolationConfig {
		c := hybrid.DefaultIsolation("/srv/rootfs")
		f(c)
		return c
	}
	return []namedConfig{
		{"default", hybrid.DefaultIsolation("/srv/rootfs")},
		{"default-root", hybrid.DefaultIsolation("/")},
		{"seccomp-strict", with(func(c *hybrid.IsolationConfig) { c.Seccomp = hybrid.SeccompStrict })},
		{"seccomp-unconfined", with(func(c *hybrid.IsolationConfig) { c.Seccomp = hybrid.SeccompUnconfined })},
		{"seccomp-empty", with(func(c *hybrid.IsolationConfig) { c.Seccomp = "" })},
		{"network-host", with(func(c *hybrid.IsolationConfig) { c.Network = &hybrid.NetworkConfig{Mode: hybrid.NetworkHost} })},
		{"network-none", with(func(c *hybrid.IsolationConfig) { c.Network = &hybrid.NetworkConfig{Mode: hybrid.NetworkNone} })},
		{"network-zero", with(func(c *hybrid.IsolationConfig) { c.Network = &hybrid.NetworkConfig{} })},
		{"network-forwards", with(func(c *hybrid.IsolationConfig) { c.Network.PortForwards = forwards })},
		{"no-private-users", with(func(c *hybrid.IsolationConfig) { c.PrivateUsers = false })},
		{"read-only", with(func(c *hybrid.IsolationConfig) { c.ReadOnlyFS = true })},
		{"resources-zero", with(func(c *hybrid.IsolationConfig) { c.Resources = &hybrid.ResourceLimits{} })},
		{"resources-full", with(func(c *hybrid.IsolationConfig) {
			c.Resources = &hybrid.ResourceLimits{MemoryHard: "512M", MemorySoft: "256M", CPUWeight: 500, CPUSet: "0-3", IOWeight: 200, PIDsMax: 100}
		})},
		{"desktop-strict-ro", &hybrid.IsolationConfig{
			Landlock:   hybrid.DesktopPolicy("/"),
			Seccomp:    hybrid.SeccompStrict,
			Resources:  &hybrid.ResourceLimits{MemoryHard: "1G", PIDsMax: 64},
			Network:    &hybrid.NetworkConfig{Mode: hybrid.NetworkNone},
			ReadOnlyFS: true,
		}},
		{"no-landlock", &hybrid.IsolationConfig{
			Seccomp:      hybrid.SeccompUnconfined,
			Resources:    &hybrid.ResourceLimits{CPUWeight: 50},
			Network:      &hybrid.NetworkConfig{Mode: hybrid.NetworkHost},
			PrivateUsers: true,
		}},
	}
}

func isolation() []map[string]interface{} {
	var out []map[string]interface{}
	for _, c := range isolationCases() {
		out = append(out, map[string]interface{}{
			"name":         c.name,
			"json":         marshal(c.cfg),
			"json_indent":  marshalIndent(c.cfg),
			"nspawn_args":  c.cfg.NspawnArgs(),
			"config_block": c.cfg.NspawnConfigBlock("web"),
		})
	}
	return out
}

// Documents with parts left nil: the seed's methods would dereference nil on
// them, so only their JSON is recorded.
func documents() []map[string]interface{} {
	cases := []namedConfig{
		{"zero", &hybrid.IsolationConfig{}},
		{"landlock-only", &hybrid.IsolationConfig{Landlock: hybrid.DesktopPolicy("/home/u/rootfs")}},
		{"landlock-no-rules", &hybrid.IsolationConfig{Landlock: &hybrid.LandlockPolicy{}}},
		{"resources-only", &hybrid.IsolationConfig{Resources: hybrid.DefaultResourceLimits(), ReadOnlyFS: true}},
		{"network-only", &hybrid.IsolationConfig{Network: &hybrid.NetworkConfig{Mode: hybrid.NetworkNone, DNS: []string{"1.1.1.1"}}}},
		{"seccomp-only", &hybrid.IsolationConfig{Seccomp: hybrid.SeccompStrict, PrivateUsers: true}},
	}
	var out []map[string]interface{}
	for _, c := range cases {
		out = append(out, map[string]interface{}{
			"name":        c.name,
			"json":        marshal(c.cfg),
			"json_indent": marshalIndent(c.cfg),
		})
	}
	return out
}

// Paths whose JSON encoding exercises encoding/json's string escaping. The
// Python test builds the same list (invalid UTF-8 as surrogate escapes).
var stringPaths = []string{
	"/srv/<a>&b",
	"/srv/line\u2028sep\u2029para",
	"/srv/caf\u00e9/\U0001F600",
	"/srv/tab\there\nnl\rcr\x01\x1f\x7f",
	"/srv/quote\"back\\slash",
	"/srv/\xff\xfebad",
}

func stringsCase() map[string]interface{} {
	var rules []hybrid.LandlockRule
	for _, p := range stringPaths {
		rules = append(rules, hybrid.LandlockRule{Path: p, Access: hybrid.LandlockReadOnly})
	}
	pol := &hybrid.LandlockPolicy{Rules: rules}
	return map[string]interface{}{"json": marshal(pol), "json_indent": marshalIndent(pol)}
}

// JSON documents fed to json.Unmarshal: what Go reads from each, re-encoded,
// or the error it reports. Python must accept what Go accepts here (all of
// it is valid under the Python model's validation) and reject what Go rejects.
var decodeInputs = []string{
	`{"landlock":{"rules":[{"path":"/usr","access":13}]},"SECCOMP":"strict","privateusers":true,"readonlyfs":true}`,
	`{"Seccomp":"default"}`,
	`{}`,
	`null`,
	`{"Landlock":null,"Seccomp":null,"Resources":{"MemoryHard":null,"CPUWeight":null,"PIDsMax":7},"Network":{"Mode":null,"Bridge":null,"PortForwards":null,"DNS":null},"PrivateUsers":null,"ReadOnlyFS":null}`,
	`{"Landlock":{"Rules":[{"Path":"/usr","Access":13},{"Path":"/tmp","Access":32767}]}}`,
	`{"ſeccomp":"unconfined","Network":{"Mode":"none","DNſ":["1.1.1.1"]},"Landlock":{"Rules":[{"Path":"/usr","Acceſſ":5}]},"Resources":{"PIDſMax":3},"Privateuſers":true}`,
	`{"Seccomp":"strict","seccomp":"unconfined"}`,
	`{"seccomp":"strict","Seccomp":"default","seccomp":"unconfined"}`,
	`{"Resources":{"CPUWeight":1,"IOWeight":10000,"PIDsMax":-0,"MemoryHard":"max","CPUSet":"0-1,3"}}`,
	// duplicates: applied in order; null resets pointers and slices only;
	// an object is decoded into the one already there
	`{"Seccomp":"strict","Seccomp":null}`,
	`{"Network":{"Mode":"none"},"network":null}`,
	`{"Resources":{"PIDsMax":5,"pidsmax":null,"CPUWeight":7}}`,
	`{"Resources":{"PIDsMax":1,"IOWeight":3},"resources":{"CPUWeight":5,"IOWeight":4}}`,
	`{"Landlock":{"Rules":[{"Path":"/a","Access":1}],"rules":null}}`,
	`{"Landlock":{"Rules":[{"Path":"/a","Access":1}]},"Landlock":{}}`,
	`{"Network":{"DNS":["1.1.1.1","8.8.8.8"],"dns":["9.9.9.9"]}}`,
	" \n\t{ \"Network\" : { \"Mode\" : \"private\" , \"Bridge\" : \"voltbr0\" , \"PortForwards\" : [ { \"HostPort\" : 80 , \"ContainerPort\" : 8080 } ] } } \n",
	`{"Landlock":{"Rules":[{"Path":"/a\u003cb\u0026","Access":1}]}}`,
	// rejected by Go
	`{"PrivateUsers":1}`,
	`{"ReadOnlyFS":"true"}`,
	`{"Resources":{"CPUWeight":true}}`,
	`{"Resources":{"CPUWeight":"100"}}`,
	`{"Resources":{"CPUWeight":1e2}}`,
	`{"Resources":{"PIDsMax":1.5}}`,
	`{"Resources":{"PIDsMax":9223372036854775808}}`,
	`{"Resources":{"MemoryHard":512}}`,
	`{"Landlock":{"Rules":[{"Path":"/usr","Access":-1}]}}`,
	`{"Landlock":{"Rules":{}}}`,
	`{"Landlock":[]}`,
	`{"Seccomp":5}`,
	`{"Network":{"DNS":"1.1.1.1"}}`,
	`{"Network":{"PortForwards":[{"HostPort":"80","ContainerPort":80}]}}`,
	`{"Network":{"Mode":true}}`,
	`[]`,
	`"default"`,
	`{"Seccomp":"default"`,
	`{"Seccomp":"default"} x`,
}

func decode() []map[string]interface{} {
	var out []map[string]interface{}
	for _, in := range decodeInputs {
		var cfg hybrid.IsolationConfig
		entry := map[string]interface{}{"input": in}
		if err := json.Unmarshal([]byte(in), &cfg); err != nil {
			entry["error"] = err.Error()
		} else {
			entry["output"] = marshal(&cfg)
		}
		out = append(out, entry)
	}
	return out
}

var cleanInputs = []string{
	"", ".", "..", "/", "//", "///", "//a", "//a/b", "///a", "/a//b/", "a/", "a//b",
	"a/../..", "../../x", "/../a", "/..", "a/./b/.", "/a/b/../../..", "./a", "a/..",
	"abc/def/../../..", "/srv/rootfs/.", "/a/../b/", "...", "a/.../b", ".hidden/..",
}

var joinInputs = [][]string{
	{"/", "usr"}, {"", "usr"}, {"", ""}, {"/srv/rootfs", "usr"}, {"/srv/rootfs/", "usr"},
	{"relative/x", "lib"}, {"/a/../b/", "etc"}, {"//srv", "usr"}, {"/srv", "/usr"},
	{"/srv", ""}, {"", "/usr"}, {"a", "..", ".."}, {"/", ".."}, {".", "tmp"}, {"/x", "../y"},
}

func paths() map[string]interface{} {
	var clean [][]string
	for _, p := range cleanInputs {
		clean = append(clean, []string{p, filepath.Clean(p)})
	}
	var join []map[string]interface{}
	for _, e := range joinInputs {
		join = append(join, map[string]interface{}{"elems": e, "result": filepath.Join(e...)})
	}
	return map[string]interface{}{"clean": clean, "join": join}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: seed_golden SEED_SHA256")
		os.Exit(2)
	}
	d := hybrid.DefaultIsolation("/srv/rootfs")
	out := map[string]interface{}{
		"go_version":  runtime.Version(),
		"seed_sha256": os.Args[1],
		"default_isolation": map[string]interface{}{
			"rootfs":      "/srv/rootfs",
			"json":        marshal(d),
			"json_indent": marshalIndent(d),
		},
		"access": map[string]interface{}{
			"EXECUTE": hybrid.LandlockAccessFSExecute, "WRITE_FILE": hybrid.LandlockAccessFSWriteFile,
			"READ_FILE": hybrid.LandlockAccessFSReadFile, "READ_DIR": hybrid.LandlockAccessFSReadDir,
			"REMOVE_DIR": hybrid.LandlockAccessFSRemoveDir, "REMOVE_FILE": hybrid.LandlockAccessFSRemoveFile,
			"MAKE_CHAR": hybrid.LandlockAccessFSMakeChar, "MAKE_DIR": hybrid.LandlockAccessFSMakeDir,
			"MAKE_REG": hybrid.LandlockAccessFSMakeReg, "MAKE_SOCK": hybrid.LandlockAccessFSMakeSock,
			"MAKE_FIFO": hybrid.LandlockAccessFSMakeFifo, "MAKE_BLOCK": hybrid.LandlockAccessFSMakeBlock,
			"MAKE_SYM": hybrid.LandlockAccessFSMakeSym, "REFER": hybrid.LandlockAccessFSRefer,
			"TRUNCATE": hybrid.LandlockAccessFSTruncate, "READ_ONLY": hybrid.LandlockReadOnly,
			"READ_WRITE": hybrid.LandlockReadWrite, "READ_EXEC": hybrid.LandlockReadExec,
		},
		"enums": map[string]interface{}{
			"seccomp": []hybrid.SeccompProfile{hybrid.SeccompStrict, hybrid.SeccompDefault, hybrid.SeccompUnconfined},
			"network": []hybrid.NetworkMode{hybrid.NetworkPrivate, hybrid.NetworkHost, hybrid.NetworkNone},
		},
		"presets":   presets(),
		"resources": resources(),
		"network":   networks(),
		"isolation": isolation(),
		"documents": documents(),
		"strings":   stringsCase(),
		"decode":    decode(),
		"paths":     paths(),
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}
