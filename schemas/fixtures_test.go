package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fixtures"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// flatten runs the built-in views over every file of dir (NDJSON, or one
// pretty-printed resource per .json file) and returns the rows of each
// table as JSON objects, sorted.
func flatten(t *testing.T, dir string) map[string][]map[string]any {
	t.Helper()
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	e, err := transform.NewEngine(views, transform.Options{BatchRows: 64})
	if err != nil {
		t.Fatal(err)
	}
	nd := fixtures.NDJSON(t, fixtures.Files(t, dir, "*")...)
	sink := transform.NewMemSink()
	defer sink.Release()
	st, err := e.Transform(t.Context(), filepath.Base(dir), bytes.NewReader(nd), sink)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected != 0 || len(sink.Rejects) != 0 {
		t.Errorf("%s: %d rejected lines, rejects %v", dir, st.Rejected, sink.Rejects)
	}
	out := map[string][]map[string]any{}
	for _, v := range views {
		js, err := sink.JSON(v.Name())
		if err != nil {
			t.Fatal(err)
		}
		var rows []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
			if line == "" {
				continue
			}
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("%s row %q: %v", v.Name(), line, err)
			}
			rows = append(rows, row)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, _ := json.Marshal(rows[i])
			b, _ := json.Marshal(rows[j])
			return string(a) < string(b)
		})
		out[v.Name()] = rows
	}
	return out
}

// pick returns the rows of table whose key column equals id.
func pick(rows map[string][]map[string]any, table, key, id string) []map[string]any {
	var out []map[string]any
	for _, r := range rows[table] {
		if r[key] == id {
			out = append(out, r)
		}
	}
	return out
}

// golden compares got with testdata/fixtures/name, rewriting it with -update.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "testdata", "fixtures", name)
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./schemas -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)+"\n"); diff != "" {
		t.Errorf("%s differs (-want +got); review, then go test ./schemas -update:\n%s", path, diff)
	}
}

// check asserts hand-checked cells: "table|key|id|column" -> value as it
// prints in JSON.
func check(t *testing.T, rows map[string][]map[string]any, want map[string]string) {
	t.Helper()
	for spec, v := range want {
		p := strings.Split(spec, "|")
		rs := pick(rows, p[0], p[1], p[2])
		var got []string
		for _, r := range rs {
			b, _ := json.Marshal(r[p[3]])
			got = append(got, string(b))
		}
		if strings.Join(got, ",") != v {
			t.Errorf("%s = %s, want %s", spec, strings.Join(got, ","), v)
		}
	}
}

func counts(rows map[string][]map[string]any) map[string]int {
	c := map[string]int{}
	for k, v := range rows {
		c[k] = len(v)
	}
	return c
}

func TestCMSDPCFixture(t *testing.T) {
	rows := flatten(t, fixtures.Dir(t, "cms-dpc"))
	wantCounts := map[string]int{
		"patient": 1, "patient_identifier": 2, "coverage": 4, "eob": 43, "eob_item": 151,
		"eob_item_adjudication": 1541, "eob_diagnosis": 119, "eob_procedure": 0, "eob_care_team": 291,
		"encounter": 0, "encounter_diagnosis": 0, "observation": 0, "observation_component": 0, "attribution": 0,
		"organization": 0, "practitioner": 0,
	}
	if diff := cmp.Diff(wantCounts, counts(rows)); diff != "" {
		t.Errorf("rows per table (-want +got):\n%s", diff)
	}
	// Checked by hand against the raw NDJSON.
	check(t, rows, map[string]string{
		"eob|id|carrier--10177349616|claim_type":              `"professional"`,
		"eob|id|carrier--10177349616|payment_amount":          `"10"`,
		"eob_item|eob_id|carrier--10177349616|service_code":   `"88164"`,
		"eob_item|eob_id|carrier--10177349616|serviced_start": `"2000-11-01"`,
		"eob_item|eob_id|carrier--10177349616|submitted":      `"60"`,
		"eob_item|eob_id|carrier--10177349616|allowed":        `"60"`,
		"eob_item|eob_id|carrier--10177349616|paid":           `"10"`,
		"eob_diagnosis|eob_id|carrier--10177349616|code":      `"6273","9999999"`,
		"eob|id|outpatient--1973996130|claim_type":            `"institutional"`,
		"eob|id|outpatient--1973996130|total_submitted":       `"500"`,
		"eob|id|outpatient--1973996130|payment_amount":        `"100"`,
		"eob_diagnosis|eob_id|outpatient--1973996130|code":    `"25001"`,
	})
	if n := len(pick(rows, "eob_item", "eob_id", "outpatient--1973996130")); n != 21 {
		t.Errorf("outpatient--1973996130 has %d lines, want 21", n)
	}
	if n := len(pick(rows, "eob_item", "eob_id", "carrier--10192733163")); n != 4 {
		t.Errorf("carrier--10192733163 has %d lines, want 4", n)
	}
	named := map[string]any{"row_counts": counts(rows)}
	for _, id := range []string{"carrier--10177349616", "carrier--10192733163", "outpatient--1973996130"} {
		named[id] = map[string]any{
			"eob": pick(rows, "eob", "id", id), "eob_item": pick(rows, "eob_item", "eob_id", id),
			"eob_diagnosis": pick(rows, "eob_diagnosis", "eob_id", id), "eob_care_team": pick(rows, "eob_care_team", "eob_id", id),
		}
	}
	named["patient"], named["coverage"] = rows["patient"], rows["coverage"]
	golden(t, "cms-dpc.golden.json", named)
}

func TestCARINBBFixture(t *testing.T) {
	rows := flatten(t, fixtures.Dir(t, "carin-bb"))
	wantCounts := map[string]int{
		"patient": 1, "patient_identifier": 1, "coverage": 2, "eob": 3, "eob_item": 21,
		"eob_item_adjudication": 54, "eob_diagnosis": 10, "eob_procedure": 3, "eob_care_team": 6,
		"encounter": 0, "encounter_diagnosis": 0, "observation": 0, "observation_component": 0, "attribution": 0,
		"organization": 6, "practitioner": 3,
	}
	if diff := cmp.Diff(wantCounts, counts(rows)); diff != "" {
		t.Errorf("rows per table (-want +got):\n%s", diff)
	}
	// Checked by hand against the CARIN BB example JSON.
	check(t, rows, map[string]string{
		"eob|id|InpatientEOBExample1|claim_type":            `"institutional"`,
		"eob|id|InpatientEOBExample1|claim_subtype":         `"inpatient"`,
		"eob|id|InpatientEOBExample1|billable_period_start": `"2017-05-23"`,
		"eob|id|InpatientEOBExample1|total_submitted":       `"7147.2"`,
		"eob|id|InpatientEOBExample1|total_paid":            `"1393.57"`,
		"eob_diagnosis|eob_id|InpatientEOBExample1|code":    `"E78.5","I21.4","I25.118","M19.90"`,
		"eob_procedure|eob_id|InpatientEOBExample1|code":    `"4A023N7","B211YZZ","B215YZZ"`,
		"eob|id|InpatientEOBExample1|network_status":        `"innetwork"`,
		"eob|id|InpatientEOBExample1|provider_id":           `"ProviderOrganization3"`,
		"organization|id|ProviderOrganization1|npi":         `"1112223330"`,
		"practitioner|id|Practitioner1|npi":                 `"6667778880"`,
	})
	if n := len(pick(rows, "eob_item", "eob_id", "InpatientEOBExample1")); n != 13 {
		t.Errorf("InpatientEOBExample1 has %d lines, want 13", n)
	}
	golden(t, "carin-bb.golden.json", rows)
}
