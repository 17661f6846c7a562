package transform

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fixtures"
	"github.com/fhirlake/fhirlake/internal/fuzzcheck"
	"github.com/fhirlake/fhirlake/schemas"
)

// phiMark starts every value of the seed resources that stands for
// personal data. Rejects must never repeat one: they name the file, the
// line, the resource and the column, never content.
const phiMark = "PHI-"

// fuzzSeeds are NDJSON inputs for FuzzTransform: resources every built-in
// view reads, with the marked values, broken lines and odd shapes.
var fuzzSeeds = []string{
	`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-02T03:04:05Z"},"name":[{"use":"official","family":"PHI-Smith","given":["PHI-Ann"]}],"birthDate":"1970-06","identifier":[{"system":"http://hl7.org/fhir/sid/us-mbi","value":"PHI-1EG4TE5MK73"}]}
{"resourceType":"Patient","id":"p2","birthDate":"PHI-not-a-date","name":[{"family":"PHI-Lee"}]}
{"resourceType":"Patient","id":"p3","name":[{"use":"official","family":"PHI-A"},{"use":"official","family":"PHI-B"}]}
`,
	"\ufeff" + `{"resourceType":"Coverage","id":"c1","beneficiary":{"reference":"Patient/p1"},"period":{"start":"2024-01-01","end":"PHI-x"}}` + "\r\n\n  \n",
	`{"resourceType":"ExplanationOfBenefit","id":"e1","patient":{"reference":"Patient/p1"},"billablePeriod":{"start":"2024-02-01"},"item":[{"sequence":1,"servicedDate":"PHI-2024","adjudication":[{"category":{"coding":[{"code":"submitted"}]},"amount":{"value":"PHI-10"}}]}],"diagnosis":[{"sequence":"PHI-1"}]}`,
	`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"valueQuantity":{"value":1e400,"unit":"PHI-%"},"component":[{"valueQuantity":{"value":true}}]}`,
	`{"resourceType":"Patient","id":"p4",` + "\n" + `{"id":"x"}` + "\n" + `[1,2]` + "\n" + `{"resourceType":"Patient"}` + "\n" + `"PHI-string"`,
	"", "\n", "{}", "\x1f\x8b", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
}

// FuzzTransform runs every built-in view and the test views over hostile
// NDJSON, as given and gzip-compressed, and checks:
//   - the compressed input gives exactly what the plain one gives;
//   - the general evaluator gives exactly what the compiled plans give;
//   - every line is counted, every non-blank line is a resource or a
//     line reject, every reject names the file and a line of the input
//     and never repeats a marked value;
//   - memory grows with the input only.
func FuzzTransform(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	// The real CMS export, when the shared fixtures are beside the repo.
	f.Add(fixtures.NDJSON(f, fixtures.Files(f, "../../shared/fixtures/cms-dpc", "*")...))
	views, err := LoadViews(schemas.FS)
	if err != nil {
		f.Fatal(err)
	}
	test, err := LoadViews(os.DirFS(testdata("views")))
	if err != nil {
		f.Fatal(err)
	}
	views = append(views, test...)
	plans, err := NewEngine(views, Options{Workers: 1, BatchRows: 64})
	if err != nil {
		f.Fatal(err)
	}
	general, _ := NewEngine(views, Options{Workers: 1, BatchRows: 64})
	general.general = true
	const name = "in.ndjson"

	f.Fuzz(func(t *testing.T, data []byte) {
		var sink *MemSink
		var st Stats
		var err error
		// A pool of three 1 MiB read blocks and the views' builders are
		// the fixed part; rows and rejects grow with the input.
		fuzzcheck.Within(t, "Transform", len(data), 1024, 16<<20, func() {
			sink = NewMemSink()
			st, err = plans.Transform(t.Context(), name, bytes.NewReader(data), sink)
		})
		defer sink.Release()
		if err != nil {
			t.Fatalf("Transform: %v (damaged input is a reject, not an error)", err)
		}
		if bytes.HasPrefix(data, gzipMagic) {
			// Not NDJSON but (a likely damaged) gzip: rejects name the file.
			for _, r := range sink.Rejects {
				if r.File != name || r.Reason == "" {
					t.Fatalf("reject %+v does not name the file", r)
				}
			}
			return
		}
		checkCounts(t, name, data, st, sink)

		var zipped bytes.Buffer
		zw := gzip.NewWriter(&zipped)
		zw.Write(data)
		zw.Close()
		zsink := NewMemSink()
		defer zsink.Release()
		zst, err := plans.Transform(t.Context(), name, &zipped, zsink)
		if err != nil {
			t.Fatalf("Transform of the gzip form: %v", err)
		}
		sameRun(t, "gzip", sink, zsink, st, zst)

		gsink := NewMemSink()
		defer gsink.Release()
		gst, err := general.Transform(t.Context(), name, bytes.NewReader(data), gsink)
		if err != nil {
			t.Fatalf("Transform with the general evaluator: %v", err)
		}
		sameRun(t, "general evaluator", sink, gsink, st, gst)
	})
}

// checkCounts checks the stats and rejects of one Transform of data.
func checkCounts(t *testing.T, name string, data []byte, st Stats, sink *MemSink) {
	t.Helper()
	text := bytes.TrimPrefix(data, utf8BOM)
	lines := strings.SplitAfter(string(text), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	nonBlank := int64(0)
	for _, l := range lines {
		if len(bytes.TrimSpace([]byte(l))) > 0 {
			nonBlank++
		}
	}
	if st.Lines != int64(len(lines)) || st.Resources+st.Rejected != nonBlank {
		t.Fatalf("stats %+v for %d lines, %d of them not blank", st, len(lines), nonBlank)
	}
	if got := sink.Rows(ResourcesTable); got != st.Resources {
		t.Fatalf("%d rows in %s for %d resources", got, ResourcesTable, st.Resources)
	}
	if n := int64(len(sink.Rejects)); n != st.Rejected+st.CellRejects {
		t.Fatalf("%d rejects, stats say %d lines and %d cells", n, st.Rejected, st.CellRejects)
	}
	for _, r := range sink.Rejects {
		if r.File != name || r.Line < 1 || r.Line > st.Lines || r.Reason == "" {
			t.Fatalf("reject %+v does not locate a line of %s (%d lines)", r, name, st.Lines)
		}
		if strings.Contains(r.Reason, phiMark) || strings.Contains(r.Column, phiMark) {
			t.Fatalf("reject %+v repeats content", r)
		}
	}
}

// sameRun fails t unless two runs gave the same stats, rejects and rows.
func sameRun(t *testing.T, what string, want, got *MemSink, wantStats, gotStats Stats) {
	t.Helper()
	if diff := cmp.Diff(wantStats, gotStats); diff != "" {
		t.Fatalf("%s: stats differ (-plain +%s):\n%s", what, what, diff)
	}
	if diff := cmp.Diff(want.Rejects, got.Rejects); diff != "" {
		t.Fatalf("%s: rejects differ (-plain +%s):\n%s", what, what, diff)
	}
	for table := range wantStats.Rows {
		w, err1 := want.JSON(table)
		g, err2 := got.JSON(table)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Fatalf("%s: table %s differs (-plain +%s):\n%s", what, table, what, diff)
		}
	}
}

// FuzzCompileView compiles hostile ViewDefinitions (users add views as
// files) and checks that an error wraps ErrInvalidView, that compiling
// allocates in proportion to the definition, and that a view that
// compiles transforms the seed resources with the same rows through its
// compiled plans and through the general evaluator, every batch in the
// view's schema.
func FuzzCompileView(f *testing.F) {
	entries, err := schemas.FS.ReadDir(".")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			b, _ := schemas.FS.ReadFile(e.Name())
			f.Add(b)
		}
	}
	for _, name := range []string{"person.json", "person_name.json"} {
		b, err := os.ReadFile(testdata("views", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"resourceType":"ViewDefinition","name":"v","resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}`,
		`{"name":"v","resource":"Patient","constant":[{"name":"c","valueString":"x"}],"where":[{"path":"name.exists()"}],"select":[{"column":[{"name":"id","path":"getResourceKey()"},{"name":"c","path":"%c"}]},{"repeat":["name"],"column":[{"name":"f","path":"family","collection":true}]}]}`,
		`{"name":"v","resource":"ExplanationOfBenefit","select":[{"column":[{"name":"id","path":"id"}]},{"unionAll":[{"forEach":"item","column":[{"name":"n","path":"sequence","type":"integer"}]},{"forEachOrNull":"diagnosis","column":[{"name":"n","path":"sequence","type":"integer"}]}]}]}`,
		`{"name":"v","resource":"Observation","select":[{"column":[{"name":"id","path":"id"},{"name":"d","path":"value.ofType(Quantity).value","type":"decimal","tag":[{"name":"ansi/type","value":"DECIMAL(5,2)"}]}]}]}`,
		`{"name":"v","resource":"Patient","select":[]}`, `{"name":"1v"}`, `[]`, `{"name":"v","resource":"Patient","select":[{"column":[{"name":"id","path":"id("}]}]}`,
	} {
		f.Add([]byte(s))
	}
	var input bytes.Buffer
	for _, s := range fuzzSeeds[:4] {
		input.WriteString(s)
		input.WriteByte('\n')
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v *View
		var err error
		fuzzcheck.Bounded(t, "CompileView", len(data), 2048, func() { v, err = CompileView(data) })
		if err != nil {
			if !errors.Is(err, ErrInvalidView) {
				t.Fatalf("CompileView error %v does not wrap ErrInvalidView", err)
			}
			return
		}
		if v.Name() == ResourcesTable {
			return // NewEngine refuses the reserved name; covered by its tests
		}
		plans, err := NewEngine([]*View{v}, Options{Workers: 1, BatchRows: 16})
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		general, _ := NewEngine([]*View{v}, Options{Workers: 1, BatchRows: 16})
		general.general = true
		fast, slow := NewMemSink(), NewMemSink()
		defer fast.Release()
		defer slow.Release()
		fst, err1 := plans.Transform(t.Context(), "in.ndjson", bytes.NewReader(input.Bytes()), fast)
		gst, err2 := general.Transform(t.Context(), "in.ndjson", bytes.NewReader(input.Bytes()), slow)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("Transform: %v", err)
		}
		sameRun(t, "general evaluator", fast, slow, fst, gst)
		for _, b := range fast.Batches[v.Name()] {
			if !b.Schema().Equal(v.Schema()) {
				t.Fatalf("batch schema %s, view schema %s", b.Schema(), v.Schema())
			}
		}
	})
}
