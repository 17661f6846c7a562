package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const good = `warehouse: /data/w.duckdb
lake: /data/lake
max_rejects: 10
sources:
  - name: bison
    kind: provider-access
    tenant: bison
    fhir_url: https://gateway.example/v1/{tenant}/bulk-data/r4
    token_url: https://auth.example/token
    auth:
      method: client-secret
      client_id: c1
      client_secret: env:TEST_BISON_SECRET
      scope: "bulk-data|user/*.rs"
    types: [Patient, Coverage]
    concurrency: 2
    polling: {floor: 2s, ceiling: 1m, max_wait: 2h}
  - name: open
    kind: bulk
    fhir_url: http://localhost:8089/fhir
`

func TestLoadGood(t *testing.T) {
	t.Setenv("TEST_BISON_SECRET", "s3cret")
	f, err := Parse("fhirlake.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Source("bison")
	if err != nil {
		t.Fatal(err)
	}
	if Expand(s.FHIRURL, s.Tenant) != "https://gateway.example/v1/bison/bulk-data/r4" || *f.MaxRejects != 10 ||
		time.Duration(s.Polling.Ceiling) != time.Minute || !cmp.Equal(s.Types, []string{"Patient", "Coverage"}) {
		t.Errorf("parsed %+v", s)
	}
	secret, err := Resolve(s.Auth.ClientSecret)
	if err != nil || secret != "s3cret" {
		t.Errorf("Resolve = %q, %v", secret, err)
	}
	if _, err := f.Source("nope"); err == nil || !strings.Contains(err.Error(), "have bison, open") {
		t.Errorf("unknown source: %v", err)
	}
}

func TestProblemsNameFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("x\n"), 0o600)
	bad := `warehouse: w.duckdb
sources:
  - name: Bad Name
    kind: provider
    fhir_url: ftp://x
    token_url: https://auth.example/token
    auth:
      client_id: c1
      client_secret: hunter2
    polling: {floor: 10m, ceiling: 1m}
  - name: p2p
    kind: payer-to-payer
    fhir_url: https://x.example/fhir
    auth:
      method: private-key-jwt
      client_id: c2
      private_key: env:TEST_UNSET_KEY
      jwt_alg: HS256
    colour: blue
  - name: p2p
    kind: bulk
    fhir_url: https://y.example/fhir
    concurrency: many
`
	_, err := Parse("f.yaml", []byte(bad))
	var ps Problems
	if !errorsAs(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.String()
	}
	want := []string{
		"f.yaml:19: unknown key colour",
		"f.yaml:23: cannot unmarshal !!str `many` into int",
		`f.yaml:3: sources[0].name: "Bad Name": use lower-case letters, digits, - and _`,
		`f.yaml:4: sources[0].kind: "provider": want one of provider-access, payer-to-payer, bulk`,
		`f.yaml:5: sources[0].fhir_url: "ftp://x" is not an http(s) URL`,
		"f.yaml:10: sources[0].polling.floor: is longer than polling.ceiling",
		"f.yaml:9: sources[0].auth.client_secret: must be a reference, env:NAME or file:PATH; secrets are never written in the file",
		"f.yaml:11: sources[1].roster: a payer-to-payer source needs a roster CSV", // a missing key: where its source starts
		"f.yaml:11: sources[1].token_url: is required with auth method private-key-jwt",
		"f.yaml:17: sources[1].auth.private_key: environment variable TEST_UNSET_KEY is not set",
		`f.yaml:18: sources[1].auth.jwt_alg: "HS256": want RS384 or ES384`,
		`f.yaml:20: sources[2].name: "p2p" is used by an earlier source`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("a secret written inline leaked into the error")
	}
}

func TestUnreadableAndBrokenFiles(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: cannot read") {
		t.Errorf("missing file: %v", err)
	}
	_, err := Parse("b.yaml", []byte("warehouse: w\nsources: [a, b\n"))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:") || !strings.Contains(err.Error(), "not valid YAML") {
		t.Errorf("broken YAML: %v", err)
	}
}

func errorsAs(err error, ps *Problems) bool {
	p, ok := err.(Problems)
	*ps = p
	return ok
}

// TestExamplesAreValid keeps the shipped example configs loadable: only
// what a deployment supplies (secrets, the production roster) may be
// missing.
func TestExamplesAreValid(t *testing.T) {
	t.Chdir(filepath.Join("..", ".."))
	t.Setenv("FHIRLAKE_SANDBOX_SECRET", "x")
	t.Setenv("BISON_PA_CLIENT_SECRET", "x")
	t.Setenv("BISON_P2P_CLIENT_SECRET", "x")
	if _, err := Load("examples/fhirlake.local.yaml"); err != nil {
		t.Errorf("examples/fhirlake.local.yaml: %v", err)
	}
	_, err := Load("examples/fhirlake.yaml")
	var ps Problems
	if !errorsAs(err, &ps) || len(ps) != 1 || ps[0].Key != "sources[1].roster" {
		t.Errorf("examples/fhirlake.yaml: want only the production roster path to be missing, got %v", err)
	}
}

// TestSecretsNeverRepeated: a value that is not a reference may be the
// secret itself, so neither check nor Resolve repeats any part of it.
func TestSecretsNeverRepeated(t *testing.T) {
	for _, secret := range []string{"hunter2-inline", "hunter2:s3cr3t", "live:value:with:colons"} {
		_, err := Resolve(secret)
		if err == nil {
			t.Fatalf("Resolve(%q) succeeded", secret)
		}
		for _, part := range strings.Split(secret, ":") {
			if strings.Contains(err.Error(), part) {
				t.Errorf("Resolve error %q repeats %q", err, part)
			}
		}
		_, err = Parse("f.yaml", []byte("sources:\n  - name: a\n    kind: bulk\n    fhir_url: http://x\n    token_url: http://t\n    auth: {client_id: c, client_secret: '"+secret+"'}\n"))
		if err == nil || !strings.Contains(err.Error(), "f.yaml:6: sources[0].auth.client_secret: must be a reference") {
			t.Fatalf("Parse error %v", err)
		}
		for _, part := range strings.Split(secret, ":") {
			if strings.Contains(err.Error(), part) {
				t.Errorf("Parse error %q repeats %q", err, part)
			}
		}
	}
	// A reference is named: it is where the secret is, not the secret.
	if _, err := Resolve("env:FHIRLAKE_TEST_UNSET_VARIABLE"); err == nil || !strings.Contains(err.Error(), "env:FHIRLAKE_TEST_UNSET_VARIABLE") {
		t.Errorf("Resolve of an unset variable: %v", err)
	}
}

func TestLakeProblems(t *testing.T) {
	const sources = "sources:\n  - name: a\n    kind: bulk\n    fhir_url: http://x\n"
	for _, tc := range []struct {
		lake string // the lake keys, each line ending in \n
		want string // the problem, or "" for none
	}{
		{"lake: /data/lake\n", ""},
		{"lake: file:///data/lake\n", ""},
		{"lake: s3://bucket/fhirlake\nlake_format: iceberg\ncatalog: sqlite:/data/catalog.db\nnamespace: claims\ns3_endpoint: http://127.0.0.1:7070\ns3_path_style: true\n", ""},
		{"lake: s3://b/p\nlake_format: iceberg\ncatalog: postgres://fhirlake@db.internal/catalog?sslmode=require\n", ""},
		{"lake: s3://b/p\nlake_format: iceberg\ncatalog: env:FHIRLAKE_TEST_CATALOG\n", ""},
		{"lake_format: delta\n", `f.yaml:1: lake_format: "delta": want parquet or iceberg`},
		{"lake: s3://bucket/fhirlake\n", `f.yaml:1: lake: "s3://bucket/fhirlake": object storage needs lake_format: iceberg`},
		{"lake_format: iceberg\ncatalog: mysql://db/catalog\n", "f.yaml:2: catalog: want sqlite:PATH, a postgres:// URL, or env:NAME / file:PATH"},
		{"lake_format: iceberg\ncatalog: postgres://fhirlake:pa55word@db/catalog\n", "f.yaml:2: catalog: a password belongs in a reference, env:NAME or file:PATH, not in the file"},
		{"lake_format: iceberg\ncatalog: postgres://db/catalog?user=f&password=pa55word\n", "f.yaml:2: catalog: a password belongs in a reference, env:NAME or file:PATH, not in the file"},
		{"lake_format: iceberg\ncatalog: env:FHIRLAKE_TEST_UNSET_CATALOG\n", "f.yaml:2: catalog: environment variable FHIRLAKE_TEST_UNSET_CATALOG is not set"},
		{"lake_format: iceberg\ns3_endpoint: 127.0.0.1:7070\n", `f.yaml:2: s3_endpoint: "127.0.0.1:7070" is not an http(s) URL`},
	} {
		t.Setenv("FHIRLAKE_TEST_CATALOG", "sqlite:/tmp/c.db")
		_, err := Parse("f.yaml", []byte(tc.lake+sources))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.lake, err)
			}
			continue
		}
		var ps Problems
		if !errorsAs(err, &ps) || len(ps) != 1 || ps[0].String() != tc.want {
			t.Errorf("%q: err = %v, want the one problem %s", tc.lake, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pa55word") {
			t.Errorf("%q: the password leaked into %v", tc.lake, err)
		}
	}
}

// TestCheckFindsMisspeltKeysAndTypesInOnePass: a type error does not hide
// a misspelt key or a type that is no resource type; each misspelt key
// gets the closest known one; a file without a warehouse is reported
// when nothing else gives one; --no-resolve checks references by form.
func TestCheckFindsMisspeltKeysAndTypesInOnePass(t *testing.T) {
	data := `warehuse: w.duckdb
max_rejects: lots
sources:
  - name: a
    kind: payer-to-payer
    fhir_url: https://x.example/fhir
    tokn_url: https://x.example/token
    roster: /nonexistent/roster.csv
    types: [Patient, Patinet, Claim]
    auth:
      method: client-secret
      client_id: abc
      client_secret: env:TEST_UNSET_SECRET
      scpoe: system/*.read
`
	got := func(opts Options) []string {
		_, err := ParseWith("f.yaml", []byte(data), opts)
		var ps Problems
		if !errorsAs(err, &ps) {
			t.Fatalf("err = %v, want Problems", err)
		}
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.String()
		}
		return out
	}
	want := []string{
		"f.yaml:1: unknown key warehuse (did you mean warehouse?)",
		"f.yaml:2: cannot unmarshal !!str `lots` into int64",
		"f.yaml:7: unknown key tokn_url (did you mean token_url?)",
		"f.yaml:14: unknown key scpoe (did you mean scope?)",
		"f.yaml: warehouse: is required: the DuckDB file runs write to (or set FHIRLAKE_WAREHOUSE)",
		"f.yaml:8: sources[0].roster: cannot read /nonexistent/roster.csv",
		`f.yaml:9: sources[0].types[1]: "Patinet" is not a FHIR resource type (did you mean "Patient"?)`,
		"f.yaml:4: sources[0].token_url: is required with auth method client-secret",
		"f.yaml:13: sources[0].auth.client_secret: environment variable TEST_UNSET_SECRET is not set",
	}
	if diff := cmp.Diff(want, got(Options{RequireWarehouse: true})); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	// Without the secrets and files of the deployment: only their form.
	noResolve := got(Options{NoResolve: true})
	for _, p := range noResolve {
		if strings.Contains(p, "cannot read") || strings.Contains(p, "is not set") || strings.Contains(p, "warehouse: is required") {
			t.Errorf("--no-resolve reported %q", p)
		}
	}
	if len(noResolve) != len(want)-3 {
		t.Errorf("--no-resolve: %d problems, want %d: %q", len(noResolve), len(want)-3, noResolve)
	}
}

// TestSyntaxErrorLine: a YAML syntax error names the line to fix, not the
// line where the enclosing block starts (which the decoder gives).
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		data string
		want string
	}{
		{"warehouse: w.duckdb\nsources:\n  - name: a\n    kind: bulk\n   fhir_url: x\n", "f.yaml:5: not valid YAML: did not find expected '-' indicator (the indentation of this line matches no enclosing block)"},
		{"warehouse: w.duckdb\nperson:\n  roster_member_system: x\n\tidentifier_systems: []\n", "f.yaml:4: not valid YAML: found a tab character that violates indentation (a tab in the indentation of this line)"},
		{"a:\n  b: 1\n c: 2\n", "f.yaml:3: not valid YAML: did not find expected key (the indentation of this line matches no enclosing block)"},
		{"a: 1\nb: [1, 2\nc: 3\n", "f.yaml:2: not valid YAML: did not find expected ',' or ']' (a [ this line opens is not closed)"},
	}
	for _, tt := range tests {
		_, err := Parse("f.yaml", []byte(tt.data))
		if err == nil || err.(Problems)[0].String() != tt.want {
			t.Errorf("%q: %v, want %s", tt.data, err, tt.want)
		}
	}
}
