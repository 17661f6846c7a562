//go:build duckdb_arrow

package bench

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"

	// The pipeline loads through the DuckDB warehouse and the Hive lake,
	// which register themselves.
	_ "github.com/fhirlake/fhirlake/load/duckdb"
	_ "github.com/fhirlake/fhirlake/load/lake/hive"
)

// nativeExportTypes are the resource types of the test export: those the
// views read, and those they do not (which both sides must ignore).
var nativeExportTypes = []string{"Patient", "Coverage", "Group", "Encounter", "Condition", "ExplanationOfBenefit", "Observation", "Practitioner", "Organization"}

// TestNativeMatchesFhirlake checks that the native pipeline is a fair
// yardstick: over the same sandbox export it builds the same 16 tables as
// fhirlake's built-in views, with the same column names and types and the
// same rows, and writes a readable lake of the same rows.
func TestNativeMatchesFhirlake(t *testing.T) {
	start := time.Now()
	// Every table has rows in the sandbox data, so an empty one is a bug
	// on either side, not an easy match.
	compareNativeWithFhirlake(t, writeNativeExport(t), true)
	t.Logf("whole test: %v", time.Since(start))
}

// TestNativeEdgeCases runs the same comparison over a handful of
// hand-written resources that exercise what the sandbox data do not: the
// columns it always leaves null, absolute, versioned, urn and contained
// references, partial dates, dateTimes without a zone or with an offset,
// elements without the value first() looks for, and a resource type (Coverage)
// without any file, whose table must be empty on both sides.
func TestNativeEdgeCases(t *testing.T) {
	dir := t.TempDir()
	for name, lines := range nativeEdgeExport {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compareNativeWithFhirlake(t, dir, false)
}

// compareNativeWithFhirlake loads the export in dir with fhirlake (warehouse
// and lake) and with the native pipeline, and compares every table: columns,
// rows and the native lake. With wantRows, every table must have rows.
func compareNativeWithFhirlake(t *testing.T, dir string, wantRows bool) {
	t.Helper()
	ctx := t.Context()

	// fhirlake's side: load the export into a warehouse and a lake.
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	checkNativeCovers(t, views)
	out := t.TempDir()
	wh := filepath.Join(out, "w.duckdb")
	p := pipeline.Pipeline{Source: "bench", Views: views, SQL: fsql.FS, Warehouse: wh, Lake: filepath.Join(out, "lake")}
	if _, err := p.LoadDir(ctx, dir); err != nil {
		t.Fatalf("fhirlake load: %v", err)
	}

	// The native side, in a fresh in-memory database on one connection
	// (its temporary tables belong to the connection).
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	lakeDir := filepath.Join(out, "native-lake")
	if err := os.Mkdir(lakeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, s := range NativeStatements(dir, lakeDir) {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("native pipeline: %v\n%s", err, s)
		}
	}
	t.Logf("native pipeline: %v", time.Since(start))

	// Compare each table with fhirlake's, read from its warehouse.
	if _, err := db.ExecContext(ctx, fmt.Sprintf("ATTACH %s AS w (READ_ONLY)", nativeString(wh))); err != nil {
		t.Fatal(err)
	}
	for _, table := range NativeTables {
		t.Run(table, func(t *testing.T) {
			compareNativeColumns(t, db, table)
			compareNativeRows(t, db, table, wantRows)
			checkNativeLake(t, db, lakeDir, filepath.Join(out, "lake"), table)
		})
	}
}

// writeNativeExport writes the sandbox's resources (300 members, seed 1)
// as an export: dir/<type>.ndjson, one resource a line.
func writeNativeExport(t *testing.T) string {
	t.Helper()
	srv, err := sandbox.New(sandbox.Config{Members: 300, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, typ := range nativeExportTypes {
		var b bytes.Buffer
		for _, res := range srv.Resources(typ) {
			b.Write(bytes.TrimSpace(res))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, typ+".ndjson"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkNativeCovers checks that the native pipeline builds exactly the
// tables of the built-in views, and partitions in the lake the tables the
// views partition, by the same column and Hive key.
func checkNativeCovers(t *testing.T, views []*transform.View) {
	t.Helper()
	want := map[string][2]string{} // table -> partition column and key
	for _, v := range views {
		want[v.Name()] = [2]string{}
		for _, c := range v.Columns() {
			if key, ok := c.Tags[transform.TagPartition]; ok {
				want[v.Name()] = [2]string{c.Name, key}
			}
		}
	}
	got := map[string][2]string{}
	for _, r := range nativeResources() {
		for _, tb := range r.tables {
			got[tb.name] = [2]string{tb.column, tb.key}
		}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("the native pipeline does not build %s", name)
		} else if g != w {
			t.Errorf("%s: the native lake partitions by %q, the view by %q", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("the native pipeline builds %s, which no view does", name)
		}
	}
	if len(NativeTables) != len(got) {
		t.Errorf("NativeTables lists %d tables, the pipeline builds %d", len(NativeTables), len(got))
	}
}

// compareNativeColumns checks that the native table has the columns of
// fhirlake's, data_source aside, with the same names, order and types.
func compareNativeColumns(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	describe := func(q string) []string {
		rows, err := db.Query("SELECT column_name, column_type FROM (DESCRIBE " + q + ")")
		if err != nil {
			t.Fatalf("describe %s: %v", q, err)
		}
		defer rows.Close()
		var cols []string
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, name+" "+typ)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return cols
	}
	fl := describe("SELECT * EXCLUDE (data_source) FROM w." + table)
	nat := describe("SELECT * FROM " + table)
	if !slices.Equal(fl, nat) {
		t.Errorf("columns differ:\nfhirlake %s\nnative   %s", strings.Join(fl, ", "), strings.Join(nat, ", "))
	}
}

// compareNativeRows checks that both tables hold the same rows, as
// multisets, and with wantRows that there are some.
func compareNativeRows(t *testing.T, db *sql.DB, table string, wantRows bool) {
	t.Helper()
	fl := "SELECT * EXCLUDE (data_source) FROM w." + table
	nat := "SELECT * FROM " + table
	var nfl, nnat int64
	if err := db.QueryRow("SELECT (SELECT count(*) FROM w."+table+"), (SELECT count(*) FROM "+table+")").Scan(&nfl, &nnat); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows", nfl)
	if nfl == 0 && wantRows || nfl != nnat {
		t.Errorf("rows: fhirlake %d, native %d", nfl, nnat)
	}
	for _, side := range []struct{ name, a, b string }{
		{"only in fhirlake", fl, nat},
		{"only in native", nat, fl},
	} {
		q := fmt.Sprintf("(%s) EXCEPT ALL (%s)", side.a, side.b)
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM (" + q + ")").Scan(&n); err != nil {
			t.Fatalf("%s: %v", side.name, err)
		}
		if n > 0 {
			t.Errorf("%d rows %s, such as:\n%s", n, side.name, nativeSample(t, db, q+" LIMIT 3"))
		}
	}
}

// nativeSample renders the rows of q, one a line.
func nativeSample(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			fmt.Fprintf(&b, "%s=%v ", c, vals[i])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// checkNativeLake checks that the native lake holds the table's rows in
// Parquet, partitioned by year as fhirlake's lake is when the view says so:
// the same rows per year as fhirlake's lake (in flLake), each in the
// partition of its own year.
func checkNativeLake(t *testing.T, db *sql.DB, lakeDir, flLake, table string) {
	t.Helper()
	var column, key string
	for _, r := range nativeResources() {
		for _, tb := range r.tables {
			if tb.name == table {
				column, key = tb.column, tb.key
			}
		}
	}
	var inTable int64
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&inTable); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(lakeDir, table+".parquet")
	if key != "" {
		path = filepath.Join(lakeDir, table, key+"=*", "*.parquet")
	}
	files, err := filepath.Glob(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		if key != "" && inTable == 0 {
			return // an empty partitioned table writes no file
		}
		t.Fatalf("no lake file %s", path)
	}
	var inLake int64
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM read_parquet(%s)", nativeString(path))).Scan(&inLake); err != nil {
		t.Fatalf("read the lake: %v", err)
	}
	if inLake != inTable {
		t.Errorf("lake holds %d rows, the table %d", inLake, inTable)
	}
	if key == "" {
		return
	}
	// Each row sits in the partition of its year.
	var misplaced int64
	q := fmt.Sprintf("SELECT count(*) FROM read_parquet(%s, hive_partitioning = true) "+
		"WHERE CAST(%s AS VARCHAR) IS DISTINCT FROM coalesce(CAST(year(%s) AS VARCHAR), 'unknown')",
		nativeString(path), key, column)
	if err := db.QueryRow(q).Scan(&misplaced); err != nil {
		t.Fatalf("read the lake: %v", err)
	}
	if misplaced > 0 {
		t.Errorf("%d rows of the lake are not in the partition of their year", misplaced)
	}
	// The years and their rows are those of fhirlake's lake.
	years := func(path string) string {
		q := fmt.Sprintf("SELECT coalesce(string_agg(%[2]s || ':' || n, ' ' ORDER BY %[2]s), '') FROM "+
			"(SELECT %[2]s::VARCHAR AS %[2]s, count(*) AS n FROM read_parquet(%[1]s, hive_partitioning = true) GROUP BY ALL)",
			nativeString(path), key)
		var s string
		if err := db.QueryRow(q).Scan(&s); err != nil {
			t.Fatalf("read the lake %s: %v", path, err)
		}
		return s
	}
	if fl, nat := years(filepath.Join(flLake, table, "data_source=*", key+"=*", "*.parquet")), years(path); fl != nat {
		t.Errorf("rows per year: fhirlake's lake %s, native lake %s", fl, nat)
	}
}

// nativeEdgeExport is the export of TestNativeEdgeCases: file name to
// lines. It has no Coverage file. Two things it leaves out on purpose, as
// the native pipeline does not match them: decimals with more digits than
// their column's scale that fall on a tie (fhirlake rounds them through
// arrow's binary big.Float, 2.0000005 to 2.000000 in DECIMAL(18,6); DuckDB
// rounds the decimal half up, to 2.000001), and resources that break FHIR by
// giving a choice element twice (valueQuantity and valueCodeableConcept:
// fhirlake takes the first in the JSON, the SQL reads both).
var nativeEdgeExport = map[string][]string{
	"Encounter.ndjson": {
		`{"resourceType":"Encounter","id":"e1","meta":{"lastUpdated":"2025-03-04T05:06:07.1234567Z"},"status":"finished","class":{"code":"AMB"},"type":[{"coding":[{"system":"http://other","code":"X"}]},{"coding":[{"system":"http://snomed.info/sct"},{"system":"http://www.ama-assn.org/go/cpt","code":"99213"}]}],"subject":{"reference":"Patient/p1"},"period":{"start":"2025-03-04T05:06:07","end":"2025-03"},"serviceProvider":{"reference":"urn:uuid:org-1"},"diagnosis":[{"condition":{"reference":"Condition/c1"},"rank":2,"use":{"coding":[{"system":"s"},{"code":"AD"}]}},{"condition":{"reference":"Condition/c2"},"rank":1}]}`,
		`{"resourceType":"Encounter","id":"e2","subject":{"reference":"Group/g1"},"period":{"start":"2025"},"diagnosis":[{"condition":{"reference":"Observation/o1"},"rank":1},{"condition":{"display":"no reference"}},{"condition":{"reference":"http://x.example/fhir/Condition/c3/_history/1"}}]}`,
		`{"resourceType":"Encounter","id":"e3","diagnosis":[]}`,
	},
	"ExplanationOfBenefit.001.ndjson": {
		`{"resourceType":"ExplanationOfBenefit","id":"x1","meta":{"lastUpdated":"2025-05-06T07:08:09+05:30"},"status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"institutional"}]},"subType":{"coding":[{"system":"http://other"},{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType","code":"inpatient"}]},"use":"claim","patient":{"reference":"Patient/p1"},"billablePeriod":{"start":"2023-12","end":"2024-01-15"},"created":"2024-02-01","insurer":{"display":"Payer"},"provider":{"reference":"https://x.example/fhir/Organization/o1"},"outcome":"complete","careTeam":[{"sequence":1,"provider":{"identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"111"}},"role":{"coding":[{"system":"r"},{"code":"attending"}]}},{"sequence":2,"provider":{"reference":"Practitioner/pr1","identifier":{"system":"other","value":"222"}}}],"diagnosis":[{"sequence":1,"diagnosisReference":{"reference":"Condition/c1"},"onAdmission":{"coding":[{"code":"Y"}]},"type":[{"coding":[{"system":"t"}]},{"coding":[{"code":"principal"}]}]},{"sequence":2,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10"},{"system":"http://hl7.org/fhir/sid/icd-9-cm","code":"250.00"}]}}],"procedure":[{"sequence":1,"date":"2024-01-02T10:00:00-05:00","procedureCodeableConcept":{"coding":[{"system":"http://www.cms.gov/Medicare/Coding/ICD10"},{"code":"0BJ08ZZ"}]}},{"sequence":2}],"total":[{"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/adjudication","code":"submitted"}]}},{"category":{"coding":[{"system":"https://bluebutton.cms.gov/resources/codesystem/adjudication","code":"https://bluebutton.cms.gov/resources/variables/clm_tot_chrg_amt"}]},"amount":{"value":100.5}},{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication","code":"paidtoprovider"}]},"amount":{"value":80}}],"payment":{"amount":{"value":80.25}},"item":[{"sequence":1,"productOrService":{"coding":[{"system":"https://bluebutton.cms.gov/resources/codesystem/hcpcs","code":"G0001"},{"system":"http://hl7.org/fhir/sid/ndc","code":"0001"}]},"revenue":{"coding":[{"system":"https://bluebutton.cms.gov/resources/variables/rev_cntr","code":"0450"}]},"servicedPeriod":{"start":"2024-01-01","end":"2024-01-03"},"quantity":{"value":2.5},"locationCodeableConcept":{"coding":[{"system":"https://bluebutton.cms.gov/resources/variables/line_place_of_srvc_cd","code":"11"}]},"adjudication":[{"category":{"coding":[{"code":"submitted"},{"code":"https://bluebutton.cms.gov/resources/variables/rev_cntr_rate_amt"}]},"amount":{"value":10}},{"category":{"coding":[{"system":"x","code":"submitted"}]},"amount":{"value":20}},{"category":{"coding":[{"code":"benefit"}]},"reason":{"coding":[{"system":"r"},{"code":"A1"}]}},{"category":{"coding":[{"code":"benefit"}]},"amount":{"value":15}},{"category":{"coding":[{"code":"paidtoprovider"}]},"amount":{"value":16}},{"category":{"coding":[{"code":"coinsurance"}]},"amount":{"value":1}},{"category":{"coding":[{"code":"coinsurance"}]},"amount":{"value":2}}]},{"sequence":2,"servicedDate":"2024-01-05","adjudication":[]},{"sequence":3}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"x2","billablePeriod":{"start":"2022-06-30T23:00:00-05:00"},"patient":{"reference":"Patient/p2/_history/1"},"item":[{"sequence":1,"servicedDate":"2022"}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"x3","facility":{"extension":[{"url":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","valueCoding":{"system":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","code":"1"}}]},"extension":[{"url":"https://bluebutton.cms.gov/resources/variables/clm_srvc_clsfctn_type_cd","valueCoding":{"system":"https://bluebutton.cms.gov/resources/variables/clm_srvc_clsfctn_type_cd","code":"4"}}],"supportingInfo":[{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType","code":"typeofbill"}]},"code":{"coding":[{"system":"https://bluebutton.cms.gov/resources/variables/clm_freq_cd","code":"1"}]}}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"x4","facility":{"extension":[{"url":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","valueCoding":{"system":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","code":"1"}}]},"supportingInfo":[{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType","code":"typeofbill"}]},"code":{"coding":[{"system":"https://bluebutton.cms.gov/resources/variables/clm_freq_cd","code":"1"}]}}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"x5","facility":{"extension":[{"url":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","valueCoding":{"system":"https://bluebutton.cms.gov/resources/variables/clm_fac_type_cd","code":"1"}}]},"extension":[{"url":"https://bluebutton.cms.gov/resources/variables/clm_srvc_clsfctn_type_cd","valueCoding":{"system":"https://bluebutton.cms.gov/resources/variables/clm_srvc_clsfctn_type_cd","code":"4"}}],"supportingInfo":[{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType","code":"typeofbill"}]},"code":{"coding":[{"system":"https://bluebutton.cms.gov/resources/variables/clm_freq_cd","code":"1"}]}},{"category":{"coding":[{"code":"typeofbill"}]},"code":{"coding":[{"system":"https://www.nubc.org/CodeSystem/TypeOfBill","code":"0131"}]}}]}`,
		// Billing provider identifiers on the reference, in the contained
		// Organization the reference names (not the other one), and the
		// claim's network status in its totals or a C4BB STU2 adjudication.
		`{"resourceType":"ExplanationOfBenefit","id":"x6","contained":[{"resourceType":"Organization","id":"fac","identifier":[{"system":"urn:oid:2.16.840.1.113883.4.4","value":"33-3333333"}]},{"resourceType":"Organization","id":"prov","identifier":[{"type":{"coding":[{"code":"NPI"}]},"value":"2000000002"},{"type":{"coding":[{"code":"TAX"}]},"value":"22-2222222"}]}],"provider":{"reference":"#prov"},"facility":{"reference":"#fac"},"adjudication":[{"category":{"coding":[{"code":"benefitpaymentstatus"}]},"reason":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus","code":"outofnetwork"}]}}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"x7","provider":{"reference":"Organization/o1","identifier":{"type":{"coding":[{"code":"tax"}]},"value":"11-1111111"}},"facility":{"reference":"Location/l1"},"total":[{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus","code":"innetwork"}]},"amount":{"value":0}}]}`,
	},
	"Organization.ndjson": {
		`{"resourceType":"Organization","id":"o1","active":true,"name":"A","type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov"}]}],"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1"},{"type":{"coding":[{"code":"TAX"}]},"value":"t"}],"address":[{"city":"x"},{"state":"KS"}]}`,
		`{"resourceType":"Organization","id":"o2","identifier":[]}`,
	},
	"Practitioner.ndjson": {
		`{"resourceType":"Practitioner","id":"pr1","name":[{"given":[null,"B"]},{"family":"Second"}],"identifier":[{"type":{"coding":[{"code":"npi"}]},"value":"9"}],"qualification":[{"code":{"coding":[{"code":"q"}]}}]}`,
		`{"resourceType":"Practitioner","id":"pr2"}`,
	},
	"Group.ndjson": {
		`{"resourceType":"Group","id":"g1","managingEntity":{"reference":"urn:oid:1.2.3"},"characteristic":[{"valueBoolean":true},{"valueReference":{"identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}}}],"member":[{"entity":{"reference":"urn:uuid:abc"}},{"entity":{"reference":"https://x.example/fhir/Patient/p2/_history/3"},"period":{"start":"2024","end":"2024-12-31"},"inactive":true,"extension":[{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributedProvider","valueReference":{"reference":"Practitioner/pr1"}}]},{"entity":{"reference":"#contained"}},{"entity":{"reference":"Patient/p1"},"extension":[{"url":"other","valueReference":{"reference":"Practitioner/pr9"}},{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributedProvider","valueReference":{"display":"no reference"}},{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributedProvider","valueReference":{"reference":"https://x.example/fhir/Organization/o1"}}]}]}`,
		`{"resourceType":"Group","id":"g2","managingEntity":{"reference":"Organization/"},"member":[]}`,
		`{"resourceType":"Group","id":"g3","managingEntity":{"reference":"Practitioner/pr1/_history/2"},"member":[{"entity":{"reference":"Group/g1"}}]}`,
	},
	"Observation.ndjson": {
		`{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"x","code":"y"}]},{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","display":"no code"},{"system":"http://loinc.org","code":"4548-4","display":"HbA1c"}]},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"urn:uuid:enc"},"effectivePeriod":{"start":"2024-03-04T05:06:07+01:00"},"valueString":"positive","interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H"}]}]}`,
		`{"resourceType":"Observation","id":"o2","effectiveInstant":"2024-12-31T23:59:59.999999Z","valueBoolean":false,"encounter":{"reference":"Encounter/e1"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueCodeableConcept":{"coding":[{"system":"s"},{"code":"N"}]}},{"valueQuantity":{"code":"mm[Hg]","value":1.25}}]}`,
		`{"resourceType":"Observation","id":"o3","effectiveDateTime":"2023-05","valueQuantity":{"value":1.123456,"unit":"%","code":"%"}}`,
		`{"resourceType":"Observation","id":"o4","valueCodeableConcept":{"coding":[{"code":"c"}]}}`,
	},
	"Patient.ndjson": {
		`{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2025-01-02T03:04:05.123+02:00"},"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"https://payer.example/member","value":"M1"},{"system":"http://hl7.org/fhir/sid/us-mbi","value":"1EG4TE5MK73"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203"},{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}}],"name":[{"use":"usual","family":"Nick","given":["N"]},{"use":"official","family":"Smith","given":["Ann","B"]}],"gender":"female","birthDate":"1970","deceasedBoolean":false,"extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"text","valueString":"x"},{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238"}},{"url":"ombCategory","valueCoding":{"code":"2106-3"}}]}],"address":[{"city":"X"},{"state":"MT","postalCode":"59101"}]}`,
		`{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2025-01-02"},"name":[{"family":"Doe","given":["J"]},{"use":"official","family":"Doe","given":["J","K"]}],"birthDate":"1980-07","deceasedBoolean":true}`,
		`{"resourceType":"Patient","id":"p3","name":[{"use":"nickname","given":["Z"]}],"birthDate":"1990-02-03T10:00:00-05:00","deceasedDateTime":"2020-05-06","address":[]}`,
		`{"resourceType":"Patient","id":"p4","deceasedDateTime":"2021-06-07T08:09:10","identifier":[]}`,
	},
}
