package config

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/fhirlake/fhirlake/internal/fuzzcheck"
)

// FuzzParse loads hostile configuration files and checks that every
// problem is a Problem naming the file and a line of it (or none), that
// the decoder's memory grows with the file only, and that an inline
// secret, the mistake the loader exists to catch, is never repeated in a
// message.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	for _, s := range []string{
		"sources:\n  - name: a\n    kind: bulk\n    fhir_url: http://x\n    auth: {method: client-secret, client_id: c, client_secret: hunter2-inline}\n    token_url: http://t\n",
		"sources:\n  - name: a\n    auth:\n      client_secret: \"hunter2:cdefgh\"\n      method: client-secret\n",
		"sources:\n  - name: a\n    auth:\n      private_key: \"live-value:x\"\n      method: private-key-jwt\n",
		"sources:\n  - name: A B\n    kind: nope\n    polling: {floor: 2m, ceiling: 1s, max_wait: -1s}\n    concurrency: -2\n",
		"warehouse: [1\n", "a: &x [*x]\n", "max_rejects: line 99999\n", "sources: {}\n", "\t", "---\n---\n",
		"sources:\n  - &s {name: a, kind: bulk, fhir_url: 'http://x'}\n  - *s\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fhirlake.yaml"
		var err error
		fuzzcheck.Bounded(t, "Parse", len(data), 4096, func() { _, err = Parse(path, data) })
		if err == nil {
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("Parse error %T %v is not a list of problems", err, err)
		}
		lines := yamlLines(data)
		secrets := inlineSecrets(data)
		for _, p := range ps {
			if p.File != path || p.Line < 0 || p.Line > lines || p.Msg == "" {
				t.Fatalf("problem %+v does not locate a line of the %d-line file", p, lines)
			}
			for _, s := range secrets {
				if strings.Contains(p.String(), s) {
					t.Fatalf("problem %q repeats the inline secret %q", p, s)
				}
			}
		}
	})
}

// inlineSecrets returns the values of client_secret and private_key keys
// that are not references, cut at a colon as checkRef cuts them: each
// part longer than three bytes. A reference (env:NAME, file:PATH) may be
// named in a message; anything else may be the secret itself.
func inlineSecrets(data []byte) []string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	var out []string
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if (k.Value == "client_secret" || k.Value == "private_key") && v.Kind == yaml.ScalarNode &&
					!strings.HasPrefix(v.Value, "env:") && !strings.HasPrefix(v.Value, "file:") {
					for _, part := range strings.Split(v.Value, ":") {
						if len(part) > 3 {
							out = append(out, part)
						}
					}
				}
			}
		}
		for _, c := range n.Content {
			visit(c)
		}
	}
	visit(&root)
	return out
}

// yamlLines counts the lines of data as the YAML parser does: CR LF, CR,
// LF, and the Unicode NEL, LS and PS each end one.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += strings.Count(s, brk)
	}
	return n
}
