package transform

import (
	"bytes"
	cmp2 "cmp"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func testdata(parts ...string) string {
	return filepath.Join(append([]string{"..", "testdata", "transform"}, parts...)...)
}

func loadTestViews(t *testing.T) []*View {
	t.Helper()
	views, err := LoadViews(os.DirFS(testdata("views")))
	if err != nil {
		t.Fatal(err)
	}
	return views
}

func transformFile(t *testing.T, views []*View, opts Options, file string) (Stats, *MemSink) {
	t.Helper()
	e, err := NewEngine(views, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testdata(file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := NewMemSink()
	t.Cleanup(sink.Release)
	st, err := e.Transform(t.Context(), file, f, sink)
	if err != nil {
		t.Fatal(err)
	}
	return st, sink
}

func TestTransformGolden(t *testing.T) {
	_, sink := transformFile(t, loadTestViews(t), Options{}, "patients.ndjson")
	for _, table := range []string{"person", "person_name", ResourcesTable} {
		t.Run(table, func(t *testing.T) {
			got, err := sink.JSON(table)
			if err != nil {
				t.Fatal(err)
			}
			golden := testdata("golden", table+".jsonl")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", table, diff)
			}
		})
	}
}

func TestTransformRejects(t *testing.T) {
	st, sink := transformFile(t, loadTestViews(t), Options{}, "patients.ndjson")
	want := []Reject{
		{File: "patients.ndjson", Line: 1, ResourceType: "Patient", ResourceID: "p1", Column: "balance", Reason: "bad value: 3 decimal places, more than decimal(12,2) keeps (it would be rounded)"},
		{File: "patients.ndjson", Line: 3, ResourceType: "Patient", ResourceID: "p2", Column: "birth_date", Reason: "bad value: not a date"},
		{File: "patients.ndjson", Line: 5, Reason: "missing id", ResourceType: "Patient"},
		{File: "patients.ndjson", Line: 6, Reason: "missing resourceType"},
		{File: "patients.ndjson", Line: 7, Reason: "invalid JSON at byte 36: unexpected end of input"},
		{File: "patients.ndjson", Line: 9, ResourceType: "Patient", ResourceID: "p5", Column: "family", Reason: ErrNotCollection.Error()},
	}
	if diff := cmp.Diff(want, sink.Rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	wantStats := Stats{Lines: 10, Resources: 6, Rejected: 3, CellRejects: 3,
		Rows: map[string]int64{"person": 5, "person_name": 6, ResourcesTable: 6}}
	if diff := cmp.Diff(wantStats, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestTransformBatching(t *testing.T) {
	_, sink := transformFile(t, loadTestViews(t), Options{BatchRows: 2}, "patients.ndjson")
	for table, want := range map[string][]int64{"person": {2, 2, 1}, ResourcesTable: {2, 2, 2}, "person_name": {2, 2, 2}} {
		var got []int64
		for _, b := range sink.Batches[table] {
			got = append(got, b.NumRows())
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s batch sizes (-want +got):\n%s", table, diff)
		}
	}
}

func TestTransformLongLine(t *testing.T) {
	e, err := NewEngine(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := `{"resourceType":"Patient","id":"big","text":"` + strings.Repeat("x", 3<<20) + `"}` + "\n"
	sink := NewMemSink()
	defer sink.Release()
	st, err := e.Transform(t.Context(), "big.ndjson", strings.NewReader(big+big), sink)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resources != 2 || st.Rejected != 0 {
		t.Errorf("stats = %+v, want 2 resources and no rejects", st)
	}
}

func TestCompileViewErrors(t *testing.T) {
	tests := []struct {
		name, view, want string
	}{
		{"bad name", `{"name":"1x","resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}`, `view "1x": name must match`},
		{"no name", `{"resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}`, `view "": name must match`},
		{"bad column name", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a-b","path":"id"}]}]}`, `view "v": column "a-b": name must match`},
		{"duplicate column", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"id"},{"name":"a","path":"id"}]}]}`, `column "a": duplicate name`},
		{"parse error", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"name.where(x))"}]}]}`, `view "v": column "a": fhirpath: 1:14: unexpected ')'`},
		{"unknown function", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"name.nope()"}]}]}`, `column "a": fhirpath: 1:6: unknown function nope`},
		{"unknown constant", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"%x"}]}]}`, `column "a": undefined constant %x`},
		{"union mismatch", `{"name":"v","resource":"Patient","select":[{"unionAll":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"b","path":"id"}]}]}]}`, `unionAll branch 2: columns [b] differ from branch 1 columns [a]`},
		{"two forEach", `{"name":"v","resource":"Patient","select":[{"forEach":"name","forEachOrNull":"name","column":[{"name":"a","path":"id"}]}]}`, `only one of forEach, forEachOrNull and repeat`},
		{"bad type", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"id","type":"Quantity"}]}]}`, `column "a": unsupported column type "Quantity"`},
		{"bad decimal tag", `{"name":"v","resource":"Patient","select":[{"column":[{"name":"a","path":"id","type":"decimal","tag":[{"name":"ansi/type","value":"FLOAT"}]}]}]}`, `ansi/type "FLOAT"`},
		{"no resource", `{"name":"v","select":[{"column":[{"name":"a","path":"id"}]}]}`, `resource must be`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileView([]byte(tt.view))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CompileView error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestViewMetadata(t *testing.T) {
	views := loadTestViews(t)
	got := map[string][]string{}
	for _, v := range views {
		got[v.Name()] = append(got[v.Name()], "key="+v.KeyColumn())
		for _, f := range v.Schema().Fields() {
			got[v.Name()] = append(got[v.Name()], f.Name+": "+f.Type.String())
		}
	}
	want := map[string][]string{
		"person": {"key=id", "id: utf8", "updated: timestamp[us, tz=UTC]", "family: utf8", "given: list<item: utf8, nullable>",
			"birth_date: date32", "active: bool", "balance: decimal(12, 2)", "org_id: utf8"},
		"person_name": {"key=patient_id", "patient_id: utf8", "idx: int32", "use: utf8", "family: utf8", "given: utf8"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := NewEngine(append(views, views[0]), Options{}); err == nil {
		t.Error("NewEngine accepted duplicate view names")
	}
}

// TestTransformParallel checks that several workers over many blocks give
// the same rows as one worker and exact line numbers in rejects.
func TestTransformParallel(t *testing.T) {
	var in strings.Builder
	var want []Reject
	line := int64(0)
	add := func(s string) {
		line++
		in.WriteString(s + "\n")
	}
	for i := range 40000 {
		switch {
		case i%997 == 0:
			add(`{"resourceType":"Patient"`)
			want = append(want, Reject{File: "p.ndjson", Line: line, Reason: "invalid JSON at byte 25: unexpected end of input"})
		case i%1499 == 0:
			add("")
		case i == 20000:
			add(`{"resourceType":"Patient","id":"big","text":"` + strings.Repeat("x", 3*chunkBytes/2) + `"}`)
		default:
			add(fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","name":[{"family":"F%d","given":["A","B"]}],"birthDate":"1970-01-%02d"}`, i, i, i%28+1))
		}
	}
	in.WriteString(`{"resourceType":"Patient","id":"last"}`) // no final newline
	line++
	run := func(workers int) (Stats, *MemSink) {
		e, err := NewEngine(loadTestViews(t), Options{Workers: workers, BatchRows: 1000})
		if err != nil {
			t.Fatal(err)
		}
		sink := NewMemSink()
		t.Cleanup(sink.Release)
		st, err := e.Transform(t.Context(), "p.ndjson", strings.NewReader(in.String()), sink)
		if err != nil {
			t.Fatal(err)
		}
		return st, sink
	}
	st1, sink1 := run(1)
	st4, sink4 := run(4)
	if diff := cmp.Diff(st1, st4); diff != "" {
		t.Errorf("stats, 1 worker vs 4 (-1 +4):\n%s", diff)
	}
	if st4.Lines != line {
		t.Errorf("lines = %d, want %d", st4.Lines, line)
	}
	rejects := slices.Clone(sink4.Rejects)
	slices.SortFunc(rejects, func(a, b Reject) int { return cmp2.Compare(a.Line, b.Line) })
	if diff := cmp.Diff(want, rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	for _, table := range []string{"person", "person_name", ResourcesTable} {
		a, err := sink1.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sink4.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
		slices.Sort(la)
		slices.Sort(lb)
		if !slices.Equal(la, lb) {
			t.Errorf("%s: 4 workers give other rows than 1 (%d vs %d lines)", table, len(lb), len(la))
		}
	}
}

// TestMemberFilter checks that lines are read only as far as the index
// and the views need, and that this changes nothing they see.
func TestMemberFilter(t *testing.T) {
	view := func(path string) *View {
		t.Helper()
		v, err := compileView([]byte(`{"resourceType":"ViewDefinition","name":"v","resource":"Patient","status":"active",
			"select":[{"column":[{"name":"id","path":"id"},{"name":"x","path":"`+path+`"}]}]}`), true)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	e, err := NewEngine([]*View{view("name.family.first()")}, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"resourceType": true, "id": true, "meta": true, "name": true, "family": true, "text": false, "birthDate": false} {
		if got := e.filter.Keep(key); got != want {
			t.Errorf("Keep(%q) = %v, want %v", key, got, want)
		}
	}
	in := `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2024-01-02T03:04:05Z"},"text":{"div":"<div>\u00e9</div>"},"name":[{"family":"Doe"}]}
{"resourceType":"Patient","id":"p2","text":{"div":tru},"name":[{"family":"Roe"}]}
`
	sink := NewMemSink()
	defer sink.Release()
	if _, err := e.Transform(t.Context(), "f.ndjson", strings.NewReader(in), sink); err != nil {
		t.Fatal(err)
	}
	// A skipped member is still checked: the second line is rejected as
	// it would be if it were read whole.
	want := []Reject{{File: "f.ndjson", Line: 2, Reason: "invalid JSON at byte 50: invalid literal"}}
	if diff := cmp.Diff(want, sink.Rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	res := sink.Batches[ResourcesTable][0]
	if got := res.Column(2).(*array.Timestamp).Value(0); got != 1704164645000000 {
		t.Errorf("meta_last_updated = %d: the index lost meta", got)
	}
	if got := sink.Batches["v"][0].Column(1).(*array.String).Value(0); got != "Doe" {
		t.Errorf("x = %q", got)
	}
	// A view that can reach the whole resource reads lines whole.
	for _, path := range []string{"%resource.name.family", "Patient.name.family", "name.where($this.family = 'x').given"} {
		if e, err := NewEngine([]*View{view(path)}, Options{}); err != nil || e.filter != nil {
			t.Errorf("%s: filter %v, error %v; want no filter", path, e.filter, err)
		}
	}
}

// TestFlatRowError checks that a path failing in the middle of a flat
// row takes back the cells already written: the resource yields no row
// and the next resource's row is whole.
func TestFlatRowError(t *testing.T) {
	v, err := compileView([]byte(`{"resourceType":"ViewDefinition","name":"v","resource":"Patient","status":"active",
		"select":[{"column":[{"name":"id","path":"id"},{"name":"g","path":"gender"}]},
		          {"select":[{"column":[{"name":"old","path":"multipleBirth > 1","type":"boolean"},{"name":"n","path":"name.family.first()"}]}]}]}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.flat) != 4 {
		t.Fatalf("view has %d flat columns, want 4", len(v.flat))
	}
	e, err := NewEngine([]*View{v}, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := `{"resourceType":"Patient","id":"a","gender":"female","multipleBirthInteger":2,"name":[{"family":"A"}]}
{"resourceType":"Patient","id":"b","gender":"male","multipleBirthBoolean":true,"name":[{"family":"B"}]}
{"resourceType":"Patient","id":"c","name":[{"family":"C"}]}
{"resourceType":"Patient","id":"d","gender":["female","male"],"name":[{"family":"D"}]}
`
	sink := NewMemSink()
	defer sink.Release()
	if _, err := e.Transform(t.Context(), "f.ndjson", strings.NewReader(in), sink); err != nil {
		t.Fatal(err)
	}
	// b loses its row; d keeps it, g nulled for holding two values.
	wantRejects := []Reject{
		{File: "f.ndjson", Line: 2, ResourceType: "Patient", ResourceID: "b", Reason: "fhirpath: evaluation: multipleBirth > 1: cannot compare boolean with integer"},
		{File: "f.ndjson", Line: 4, ResourceType: "Patient", ResourceID: "d", Column: "g", Reason: ErrNotCollection.Error()},
	}
	if diff := cmp.Diff(wantRejects, sink.Rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	rec := sink.Batches["v"][0]
	var got []string
	for r := range int(rec.NumRows()) {
		var cells []string
		for c := range int(rec.NumCols()) {
			cells = append(cells, rec.Column(c).ValueStr(r))
		}
		got = append(got, strings.Join(cells, ","))
	}
	want := []string{"a,female,true,A", "c,(null),(null),C", "d,(null),(null),D"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestTransformInputForms: the same NDJSON gives the same rows, rejects
// and line numbers plain, after a byte-order mark, gzip-compressed (in
// one member or two, as `cat a.gz b.gz` makes) whatever the file's name.
func TestTransformInputForms(t *testing.T) {
	plain, err := os.ReadFile(testdata("patients.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	gz := func(parts ...[]byte) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			zw := gzip.NewWriter(&b)
			zw.Write(p)
			zw.Close()
		}
		return b.Bytes()
	}
	half := bytes.Index(plain, []byte("\n{\"resourceType\":\"Patient\",\"id\":\"p3\"")) + 1
	bom := append([]byte("\ufeff"), plain...)
	views := loadTestViews(t)
	want, wantStats := transformBytes(t, views, plain)
	for name, in := range map[string][]byte{
		"bom": bom, "gzip": gz(plain), "gzip+bom": gz(bom), "two members": gz(plain[:half], plain[half:]),
	} {
		t.Run(name, func(t *testing.T) {
			got, gotStats := transformBytes(t, views, in)
			sameRun(t, name, want, got, wantStats, gotStats)
		})
	}
	// A second mark inside the text is content, not an encoding mark.
	_, st := transformBytes(t, views, append(bom, "\ufeff{\"resourceType\":\"Patient\",\"id\":\"z\"}\n"...))
	if st.Rejected != wantStats.Rejected+1 {
		t.Errorf("a mark after line 1: %d rejects, want %d", st.Rejected, wantStats.Rejected+1)
	}
}

// TestTransformDamagedInput: a damaged compressed file keeps the lines
// before the damage and says, in a reject naming the file, what was lost;
// the run goes on.
func TestTransformDamagedInput(t *testing.T) {
	plain, err := os.ReadFile(testdata("patients.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	whole := zb.Bytes()
	views := loadTestViews(t)
	for _, c := range []struct {
		name, file string
		in         []byte
		wantLines  int64 // lines read before the damage
		reason     string
	}{
		{"truncated", "a.ndjson.gz", whole[:len(whole)-20], 10, "damaged gzip stream: unexpected EOF: the lines after this point are lost"},
		{"cut early", "a.ndjson.gz", whole[:40], 0, "damaged gzip stream: unexpected EOF: the lines after this point are lost"},
		{"no checksum", "a.ndjson.gz", whole[:len(whole)-4], 10, "damaged gzip stream: unexpected EOF: the lines after this point are lost"},
		{"bad header", "a.ndjson.gz", []byte("\x1f\x8bnot gzip at all"), 0, "damaged gzip stream: gzip: invalid header"},
		{"empty .gz", "a.ndjson.gz", nil, 0, "empty file: a gzip stream holds at least a header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := NewEngine(views, Options{Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			sink := NewMemSink()
			defer sink.Release()
			st, err := e.Transform(t.Context(), c.file, bytes.NewReader(c.in), sink)
			if err != nil {
				t.Fatalf("Transform: %v, want the damage as a reject", err)
			}
			last := sink.Rejects[len(sink.Rejects)-1]
			if last.File != c.file || last.Reason != c.reason || last.Line != st.Lines+1 {
				t.Errorf("last reject %+v, want %q at line %d of %s", last, c.reason, st.Lines+1, c.file)
			}
			if st.Lines < c.wantLines {
				t.Errorf("%d lines read before the damage, want at least %d", st.Lines, c.wantLines)
			}
		})
	}
	// An empty plain file is just empty.
	e, _ := NewEngine(views, Options{})
	sink := NewMemSink()
	if st, err := e.Transform(t.Context(), "a.ndjson", bytes.NewReader(nil), sink); err != nil || st.Rejected != 0 || len(sink.Rejects) != 0 {
		t.Errorf("empty plain file: %+v, %v, %v", st, err, sink.Rejects)
	}
}

// TestTransformAsDeclaredType: a line whose resourceType is not a FHIR
// type, or not the one the manifest declares for the file, is a reject,
// never a row.
func TestTransformAsDeclaredType(t *testing.T) {
	in := `{"resourceType":"Patient","id":"p1"}
{"resourceType":"Observation","id":"o1","status":"final"}
{"resourceType":"Patinet","id":"p2"}
{"resourceType":"Patient","id":"p3"}
`
	e, err := NewEngine(loadTestViews(t), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	sink := NewMemSink()
	defer sink.Release()
	st, err := e.TransformAs(t.Context(), "Patient.ndjson", "Patient", strings.NewReader(in), sink)
	if err != nil {
		t.Fatal(err)
	}
	want := []Reject{
		{File: "Patient.ndjson", Line: 2, ResourceType: "Observation", ResourceID: "o1", Reason: "resourceType Observation in a file the manifest lists as Patient"},
		{File: "Patient.ndjson", Line: 3, ResourceID: "p2", Reason: "resourceType is not a FHIR resource type"},
	}
	if diff := cmp.Diff(want, sink.Rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	if st.Resources != 2 || sink.Rows(ResourcesTable) != 2 {
		t.Errorf("%d resources, %d indexed, want 2", st.Resources, sink.Rows(ResourcesTable))
	}
	// Without a declared type, only the unknown type is refused.
	sink2 := NewMemSink()
	defer sink2.Release()
	if st, _ := e.Transform(t.Context(), "any.ndjson", strings.NewReader(in), sink2); st.Resources != 3 || len(sink2.Rejects) != 1 {
		t.Errorf("undeclared: %d resources, rejects %v", st.Resources, sink2.Rejects)
	}
}

func transformBytes(t *testing.T, views []*View, in []byte) (*MemSink, Stats) {
	t.Helper()
	e, err := NewEngine(views, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	sink := NewMemSink()
	t.Cleanup(sink.Release)
	st, err := e.Transform(t.Context(), "patients.ndjson", bytes.NewReader(in), sink)
	if err != nil {
		t.Fatal(err)
	}
	return sink, st
}

// TestBadLastUpdatedIsOneReject: a meta.lastUpdated that is no dateTime
// is one reject for the resource (the index's column), not one more for
// every view column that holds it; the resource's rows still load.
func TestBadLastUpdatedIsOneReject(t *testing.T) {
	st, sink := transformFile(t, loadTestViews(t), Options{}, "bad_last_updated.ndjson")
	want := []Reject{{File: "bad_last_updated.ndjson", Line: 1, ResourceType: "Patient", ResourceID: "q1", Column: "meta_last_updated", Reason: "bad value: not a dateTime"}}
	if diff := cmp.Diff(want, sink.Rejects); diff != "" {
		t.Errorf("rejects (-want +got):\n%s", diff)
	}
	if st.Rows["person"] != 2 {
		t.Errorf("person rows %d, want 2", st.Rows["person"])
	}
}

// TestEngineReusesBlocks: an engine reads input after input (the many
// small files of an incremental export) in the block buffers of the ones
// before, and what it reads is not mixed up with what they held.
func TestEngineReusesBlocks(t *testing.T) {
	e, err := NewEngine(loadTestViews(t), Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(testdata("patients.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(data []byte) *MemSink {
		sink := NewMemSink()
		if _, err := e.Transform(t.Context(), "patients.ndjson", bytes.NewReader(data), sink); err != nil {
			t.Fatal(err)
		}
		return sink
	}
	want := run(in)
	defer want.Release()
	wantJSON, err := want.JSON("person")
	if err != nil {
		t.Fatal(err)
	}
	const inputs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range inputs {
		// Every other input is a different one, one line long.
		data := in
		if i%2 == 1 {
			data = in[:bytes.IndexByte(in, '\n')+1]
		}
		run(data).Release()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / inputs; per >= chunkBytes {
		t.Errorf("%d bytes allocated per input, want less than one block (%d): blocks are not reused", per, chunkBytes)
	}
	got := run(in)
	defer got.Release()
	gotJSON, err := got.JSON("person")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantJSON, gotJSON); diff != "" {
		t.Errorf("person after reused blocks (-first +last):\n%s", diff)
	}
}

// failingSink refuses every batch.
type failingSink struct{ MemSink }

func (s *failingSink) WriteBatch(context.Context, string, arrow.RecordBatch) error {
	return errors.New("sink refuses")
}

// TestEngineReusesWorkers: a worker kept from a call that failed with rows
// still in its builders gives, in the next call, the batches and stats of
// a new engine.
func TestEngineReusesWorkers(t *testing.T) {
	views := loadTestViews(t)
	in, err := os.ReadFile(testdata("patients.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(e *Engine) (Stats, *MemSink) {
		sink := NewMemSink()
		t.Cleanup(sink.Release)
		st, err := e.Transform(t.Context(), "patients.ndjson", bytes.NewReader(in), sink)
		if err != nil {
			t.Fatal(err)
		}
		return st, sink
	}
	fresh, err := NewEngine(views, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantStats, want := run(fresh)

	e, err := NewEngine(views, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Other names, so that rows left over from it would show.
	other := bytes.ReplaceAll(in, []byte(`"family":"`), []byte(`"family":"Other`))
	if _, err := e.Transform(t.Context(), "other.ndjson", bytes.NewReader(other), &failingSink{}); err == nil {
		t.Fatal("a refused batch is no error")
	}
	gotStats, got := run(e)
	if diff := cmp.Diff(wantStats, gotStats); diff != "" {
		t.Errorf("stats of the reused worker (-new +reused):\n%s", diff)
	}
	if len(want.Batches) < 2 {
		t.Fatalf("the input fills %d tables, want several", len(want.Batches))
	}
	for table := range want.Batches {
		w, err := want.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		g, err := got.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s from the reused worker (-new +reused):\n%s", table, diff)
		}
	}
}
