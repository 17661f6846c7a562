//go:build duckdb_arrow

package bench

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/fhirlake/fhirlake/transform"
)

// The yardstick: what a user would write with DuckDB alone. read_ndjson
// with explicit columns (no schema sampling), then SQL unnesting into the
// same columns as the built-in eob, eob_item and observation views.

const (
	codingT  = `STRUCT("system" VARCHAR, code VARCHAR, display VARCHAR)[]`
	conceptT = `STRUCT(coding ` + codingT + `)`
	refT     = `STRUCT(reference VARCHAR)`
	periodT  = `STRUCT("start" VARCHAR, "end" VARCHAR)`
	moneyT   = `STRUCT("value" DECIMAL(12,2))`
	adjT     = `STRUCT(category ` + conceptT + `, amount ` + moneyT + `)[]`
)

var eobColumns = map[string]string{
	"id":             "VARCHAR",
	"meta":           "STRUCT(lastUpdated TIMESTAMPTZ)",
	"status":         "VARCHAR",
	"patient":        refT,
	"type":           conceptT,
	"subType":        conceptT,
	"use":            "VARCHAR",
	"billablePeriod": periodT,
	"created":        "TIMESTAMPTZ",
	"insurer":        refT,
	"provider":       refT,
	"outcome":        "VARCHAR",
	"total":          adjT,
	"payment":        "STRUCT(amount " + moneyT + ")",
	"item": `STRUCT("sequence" INTEGER, productOrService ` + conceptT + `, revenue ` + conceptT +
		`, servicedDate VARCHAR, servicedPeriod ` + periodT + `, quantity STRUCT("value" DECIMAL(18,6)), locationCodeableConcept ` +
		conceptT + `, adjudication ` + adjT + `)[]`,
}

var observationColumns = map[string]string{
	"id":                   "VARCHAR",
	"meta":                 "STRUCT(lastUpdated TIMESTAMPTZ)",
	"status":               "VARCHAR",
	"category":             conceptT + "[]",
	"code":                 conceptT,
	"subject":              refT,
	"encounter":            refT,
	"effectiveDateTime":    "VARCHAR",
	"effectiveInstant":     "VARCHAR",
	"effectivePeriod":      periodT,
	"valueQuantity":        `STRUCT("value" DECIMAL(18,6), unit VARCHAR, code VARCHAR)`,
	"valueCodeableConcept": conceptT,
	"valueString":          "VARCHAR",
	"valueBoolean":         "BOOLEAN",
	"interpretation":       conceptT + "[]",
}

func columnsArg(cols map[string]string) string {
	var parts []string
	for k, v := range cols {
		parts = append(parts, fmt.Sprintf("%q: '%s'", k, v))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// pick is the first code (or field) of the codings of concept whose
// system satisfies cond (a SQL predicate over c).
func pick(concept, cond, field string) string {
	return fmt.Sprintf("list_filter(%s.coding, lambda c: %s)[1].%s", concept, cond, field)
}

func sys(systems ...string) string {
	var or []string
	for _, s := range systems {
		or = append(or, fmt.Sprintf("c.system = '%s'", s))
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// adj is the amount of the first adjudication (or total) whose category
// has a coding satisfying cond.
func adj(list, cond string) string {
	return fmt.Sprintf("list_filter(%s, lambda a: len(list_filter(a.category.coding, lambda c: %s)) > 0)[1].amount.value", list, cond)
}

func refID(ref, typ string) string {
	if typ == "" {
		return fmt.Sprintf("split_part(%s.reference, '/', -1)", ref)
	}
	return fmt.Sprintf("CASE WHEN starts_with(%s.reference, '%s/') THEN split_part(%s.reference, '/', -1) END", ref, typ, ref)
}

func eobSQL(path string) []string {
	read := fmt.Sprintf("read_ndjson('%s', columns=%s, format='newline_delimited')", path, columnsArg(eobColumns))
	return []string{
		"CREATE TEMP TABLE raw_eob AS SELECT * FROM " + read,
		`CREATE TABLE eob AS SELECT id, meta.lastUpdated AS meta_last_updated, status,
			` + refID("patient", "Patient") + ` AS patient_id,
			` + pick("type", sys("http://terminology.hl7.org/CodeSystem/claim-type"), "code") + ` AS claim_type,
			` + pick("subType", "starts_with(c.system, 'http://hl7.org/fhir/us/carin-bb/CodeSystem/')", "code") + ` AS claim_subtype,
			use, TRY_CAST(billablePeriod.start AS DATE) AS billable_period_start, TRY_CAST(billablePeriod."end" AS DATE) AS billable_period_end,
			created, ` + refID("insurer", "") + ` AS insurer_id, ` + refID("provider", "") + ` AS provider_id, outcome,
			` + adj("total", "(c.system = 'http://terminology.hl7.org/CodeSystem/adjudication' AND c.code = 'submitted') OR (c.system = 'https://bluebutton.cms.gov/resources/codesystem/adjudication' AND c.code = 'https://bluebutton.cms.gov/resources/variables/clm_tot_chrg_amt')") + ` AS total_submitted,
			` + adj("total", "(c.system = 'http://terminology.hl7.org/CodeSystem/adjudication' AND c.code = 'benefit') OR (c.system = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication' AND c.code = 'paidtoprovider')") + ` AS total_paid,
			payment.amount.value AS payment_amount
		FROM raw_eob`,
		`CREATE TABLE eob_item AS SELECT id AS eob_id, it."sequence" AS "sequence",
			` + pick("it.productOrService", sys("http://www.ama-assn.org/go/cpt", "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"), "code") + ` AS service_code,
			` + pick("it.productOrService", sys("http://www.ama-assn.org/go/cpt", "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"), "system") + ` AS service_system,
			` + pick("it.productOrService", sys("http://hl7.org/fhir/sid/ndc"), "code") + ` AS ndc,
			` + pick("it.revenue", sys("https://www.nubc.org/CodeSystem/RevenueCodes", "https://bluebutton.cms.gov/resources/variables/rev_cntr"), "code") + ` AS revenue_code,
			TRY_CAST(coalesce(it.servicedDate, it.servicedPeriod.start) AS DATE) AS serviced_start,
			TRY_CAST(coalesce(it.servicedDate, it.servicedPeriod."end") AS DATE) AS serviced_end,
			it.quantity.value AS quantity,
			` + pick("it.locationCodeableConcept", sys("https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "https://bluebutton.cms.gov/resources/variables/line_place_of_srvc_cd"), "code") + ` AS place_of_service,
			` + adj("it.adjudication", "c.code = 'submitted'") + ` AS submitted,
			` + adj("it.adjudication", "c.code = 'eligible'") + ` AS allowed,
			` + adj("it.adjudication", "c.code = 'paidtoprovider' OR c.code = 'benefit'") + ` AS paid,
			` + adj("it.adjudication", "c.code = 'copay'") + ` AS copay,
			` + adj("it.adjudication", "c.code = 'deductible'") + ` AS deductible,
			` + adj("it.adjudication", "c.code = 'coinsurance'") + ` AS coinsurance,
			` + adj("it.adjudication", "c.code = 'noncovered'") + ` AS noncovered
		FROM (SELECT id, unnest(item) AS it FROM raw_eob)`,
	}
}

func observationSQL(path string) []string {
	read := fmt.Sprintf("read_ndjson('%s', columns=%s, format='newline_delimited')", path, columnsArg(observationColumns))
	return []string{
		`CREATE TABLE observation AS SELECT id, meta.lastUpdated AS meta_last_updated, status,
			list_filter(flatten(list_transform(category, lambda x: x.coding)), lambda c: c.system = 'http://terminology.hl7.org/CodeSystem/observation-category')[1].code AS category_code,
			` + pick("code", sys("http://loinc.org"), "code") + ` AS code,
			` + pick("code", sys("http://loinc.org"), "display") + ` AS code_display,
			` + refID("subject", "Patient") + ` AS patient_id,
			` + refID("encounter", "Encounter") + ` AS encounter_id,
			TRY_CAST(coalesce(effectiveDateTime, effectiveInstant, effectivePeriod.start) AS TIMESTAMPTZ) AS effective_start,
			valueQuantity.value AS value_quantity,
			coalesce(valueQuantity.unit, valueQuantity.code) AS value_unit,
			valueCodeableConcept.coding[1].code AS value_code,
			valueString AS value_string, valueBoolean AS value_boolean,
			list_filter(flatten(list_transform(interpretation, lambda x: x.coding)), lambda c: c.system = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation')[1].code AS interpretation_code
		FROM ` + read,
	}
}

// duckdbFile runs stmts in a fresh in-memory DuckDB with GOMAXPROCS
// threads and returns the rows of tables and the elapsed time (statements
// only, not opening the database).
func duckdbFile(tb testing.TB, stmts []string, tables ...string) (int64, time.Duration) {
	tb.Helper()
	ctx := context.Background()
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads = %d", runtime.GOMAXPROCS(0))); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			tb.Fatalf("%v\n%s", err, s)
		}
	}
	d := time.Since(start)
	var rows int64
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		rows += n
	}
	return rows, d
}

func duckdbKind(tb testing.TB, kind Kind, path string) (int64, time.Duration) {
	if kind == EOB {
		return duckdbFile(tb, eobSQL(path), "eob", "eob_item")
	}
	return duckdbFile(tb, observationSQL(path), "observation")
}

func benchDuckDB(b *testing.B, kind Kind) {
	benchFile(b, kind, func(path string) (int64, time.Duration) { return duckdbKind(b, kind, path) })
}

// BenchmarkDuckDBEOB is the yardstick for BenchmarkTransformEOB: DuckDB
// reads the same file into eob and eob_item.
func BenchmarkDuckDBEOB(b *testing.B) { benchDuckDB(b, EOB) }

// BenchmarkDuckDBObservation is the yardstick for
// BenchmarkTransformObservation.
func BenchmarkDuckDBObservation(b *testing.B) { benchDuckDB(b, Observation) }

// compareTables are the tables both sides build.
var compareTables = map[Kind][]string{EOB: {"eob", "eob_item"}, Observation: {"observation"}}

// compareRounds is how many times BenchmarkCompare runs each side. On a
// shared machine one pair of runs can differ by a fifth either way; the
// median of a few alternating runs is a steadier ratio.
const compareRounds = 5

// BenchmarkCompare runs fhirlake and DuckDB on the same file, building the
// same tables, compareRounds times each and alternating which goes first,
// and reports the median throughput of each and the ratio of the medians
// (above 1: fhirlake is faster). Every run is logged, and both sides must
// write the same number of rows.
func BenchmarkCompare(b *testing.B) {
	for _, kind := range []Kind{EOB, Observation} {
		b.Run(string(kind), func(b *testing.B) {
			in := input(b, kind, TargetBytes())
			e := builtinEngine(b, transform.Options{}, compareTables[kind]...)
			b.SetBytes(in.size)
			mb := float64(in.size) / 1e6
			for range b.N {
				var fl, dk []float64
				var frows, drows int64
				for r := range compareRounds {
					sides := []func(){
						func() {
							rows, d := transformFile(b, e, in.path)
							fl = append(fl, mb/d.Seconds())
							frows = rows
						},
						func() {
							rows, d := duckdbKind(b, kind, in.path)
							dk = append(dk, mb/d.Seconds())
							drows = rows
						},
					}
					if r%2 == 1 {
						sides[0], sides[1] = sides[1], sides[0]
					}
					sides[0]()
					sides[1]()
				}
				if frows != drows {
					b.Fatalf("%s: fhirlake wrote %d rows, duckdb %d", kind, frows, drows)
				}
				f, d := median(fl), median(dk)
				b.Logf("%s %.0f MB, tables %v (%d rows): fhirlake %.0f MB/s, duckdb %.0f MB/s; medians %.1f and %.1f MB/s, ratio %.2f",
					kind, mb, compareTables[kind], frows, fl, dk, f, d, f/d)
				b.ReportMetric(f, "fhirlake-MB/s")
				b.ReportMetric(d, "duckdb-MB/s")
				b.ReportMetric(f/d, "ratio")
			}
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
