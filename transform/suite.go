package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// Report is a SQL-on-FHIR v2 conformance report, keyed by test file name:
// {"file.json": {"tests": [{"name": ..., "result": {"passed": true}}]}}.
type Report map[string]FileReport

// FileReport holds the results of the tests of one file.
type FileReport struct {
	Tests []TestReport `json:"tests"`
}

// TestReport is the result of one test.
type TestReport struct {
	Name   string     `json:"name"`
	Result TestResult `json:"result"`
}

// TestResult says whether a test passed and, when not, why.
type TestResult struct {
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
}

// Counts returns the numbers of passed and failed tests in r.
func (r Report) Counts() (passed, failed int) {
	for _, f := range r {
		for _, t := range f.Tests {
			if t.Result.Passed {
				passed++
			} else {
				failed++
			}
		}
	}
	return passed, failed
}

// Failures returns a line "FAIL file: test: reason" for each failed test
// of r, the files in name order and their tests in order.
func (r Report) Failures() []string {
	var lines []string
	for _, f := range slices.Sorted(maps.Keys(r)) {
		for _, t := range r[f].Tests {
			if !t.Result.Passed {
				lines = append(lines, fmt.Sprintf("FAIL %s: %s: %s", f, t.Name, t.Result.Reason))
			}
		}
	}
	return lines
}

// suiteFile is the format of a conformance test file (tests.schema.json).
type suiteFile struct {
	Title     string            `json:"title"`
	Resources []json.RawMessage `json:"resources"`
	Tests     []struct {
		Title         string            `json:"title"`
		View          json.RawMessage   `json:"view"`
		Expect        []json.RawMessage `json:"expect"`
		ExpectError   bool              `json:"expectError"`
		ExpectCount   *int              `json:"expectCount"`
		ExpectColumns []string          `json:"expectColumns"`
	} `json:"tests"`
}

// RunSuite runs every *.json test file in dir except tests.schema.json
// and reports each test. A view may be unnamed here, as in the suite.
func RunSuite(dir string) (Report, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("run suite: %w", err)
	}
	slices.Sort(files)
	rep := Report{}
	for _, path := range files {
		base := filepath.Base(path)
		if base == "tests.schema.json" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("run suite: %w", err)
		}
		var sf suiteFile
		if err := json.Unmarshal(data, &sf); err != nil {
			return nil, fmt.Errorf("run suite: %s: %w", base, err)
		}
		var fr FileReport
		for _, t := range sf.Tests {
			res := TestResult{Passed: true}
			rows, cols, err := runView(t.View, sf.Resources)
			switch {
			case t.ExpectError:
				if err == nil {
					res = TestResult{Reason: "expected an error"}
				}
			case err != nil:
				res = TestResult{Reason: err.Error()}
			case t.ExpectCount != nil:
				if len(rows) != *t.ExpectCount {
					res = TestResult{Reason: fmt.Sprintf("got %d rows, want %d", len(rows), *t.ExpectCount)}
				}
			default:
				if t.ExpectColumns != nil && !slices.Equal(cols, t.ExpectColumns) {
					res = TestResult{Reason: fmt.Sprintf("got columns %v, want %v", cols, t.ExpectColumns)}
					break
				}
				if diff := diffRows(rows, t.Expect); diff != "" {
					res = TestResult{Reason: diff}
				}
			}
			fr.Tests = append(fr.Tests, TestReport{Name: t.Title, Result: res})
		}
		rep[base] = fr
	}
	return rep, nil
}

// runView compiles view and evaluates it over the matching resources,
// returning rows as canonical JSON objects and the column names.
func runView(view json.RawMessage, resources []json.RawMessage) ([]string, []string, error) {
	v, err := compileView(view, false)
	if err != nil {
		return nil, nil, err
	}
	var cellErr error
	st := newEvalState(v, func(col int, err error) error {
		cellErr = fmt.Errorf("column %q: %w", v.columns[col].Name, err)
		return cellErr
	})
	var p jsondoc.Parser
	var out []string
	filter := memberFilter([]*View{v}) // as Transform reads lines
	for _, raw := range resources {
		res, err := p.ParseFiltered(raw, filter)
		if err != nil {
			return nil, nil, err
		}
		if res.Get("resourceType").Str() != v.Resource() {
			continue
		}
		rows, err := st.rows(fhirpath.Object(res))
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			obj := make(map[string]any, len(r))
			for i, c := range r {
				obj[v.columns[i].Name] = cellJSON(v.columns[i], c)
			}
			b, err := json.Marshal(obj)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, string(b))
		}
	}
	cols := make([]string, len(v.columns))
	for i, c := range v.columns {
		cols[i] = c.Name
	}
	return out, cols, nil
}

func cellJSON(col Column, c fhirpath.Collection) any {
	if !col.Collection {
		if len(c) == 0 {
			return nil
		}
		return valueJSON(c[0])
	}
	out := make([]any, len(c))
	for i, v := range c {
		out[i] = valueJSON(v)
	}
	return out
}

func valueJSON(v fhirpath.Value) any {
	switch v.Kind() {
	case fhirpath.KindBoolean:
		return v.Bool()
	case fhirpath.KindInteger:
		return v.Int()
	case fhirpath.KindDecimal:
		f, _ := strconv.ParseFloat(v.Str(), 64)
		return f
	case fhirpath.KindObject:
		var x any
		_ = json.Unmarshal(v.JSON().AppendJSON(nil), &x)
		return x
	}
	return v.Str()
}

var errRowsDiffer = errors.New("rows differ")

// diffRows compares rows (canonical JSON) with want, ignoring order.
func diffRows(got []string, want []json.RawMessage) string {
	w := make([]string, 0, len(want))
	for _, raw := range want {
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			return err.Error()
		}
		b, _ := json.Marshal(x)
		w = append(w, string(b))
	}
	g := make([]string, 0, len(got))
	for _, s := range got {
		var x any
		_ = json.Unmarshal([]byte(s), &x)
		b, _ := json.Marshal(x)
		g = append(g, string(b))
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	return fmt.Sprintf("%s: got %v, want %v", errRowsDiffer, g, w)
}
