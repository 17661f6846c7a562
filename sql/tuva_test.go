//go:build duckdb_arrow

package sql_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lduckdb "github.com/fhirlake/fhirlake/load/duckdb"
)

// tuvaContract is Tuva's input-layer contract as the shared fixture holds
// it: per table, its grain and its columns in order.
type tuvaContract struct {
	Models map[string]struct {
		Grain   []string `json:"grain"`
		Columns []struct {
			Name           string   `json:"name"`
			DataType       *string  `json:"data_type"`
			NotNull        string   `json:"not_null"`
			AcceptedValues []any    `json:"accepted_values"`
			RequiredFor    []string `json:"required_for_data_marts"`
		} `json:"columns"`
	} `json:"models"`
}

// tuvaTypes are the DuckDB types each Tuva data type accepts.
var tuvaTypes = map[string][]string{
	"varchar":   {"VARCHAR"},
	"date":      {"DATE"},
	"boolean":   {"BOOLEAN"},
	"timestamp": {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE"},
	"integer":   {"INTEGER", "BIGINT"},
	"numeric":   {"DECIMAL(38,2)"},
	"float":     {"DECIMAL(38,2)", "DOUBLE"},
	"number":    {"DECIMAL(38,2)", "DOUBLE", "INTEGER", "BIGINT"},
}

// tuvaBuilt are Tuva's input-layer tables.
var tuvaBuilt = []string{"eligibility", "medical_claim", "pharmacy_claim"}

// TestTuvaInputLayer checks the tuva views against Tuva's input-layer
// contract (../shared/fixtures/tuva-input-layer): the columns, in order,
// with compatible types; the grain unique; no null where Tuva errors on
// one; only accepted values; on every dataset of TestViews. On the CMS
// DPC export, the columns the source data carry are filled.
func TestTuvaInputLayer(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "tuva-input-layer", "input-layer.json"))
	if err != nil {
		t.Skipf("Tuva's input-layer contract not found beside the repository: %v", err)
	}
	var contract tuvaContract
	if err := json.Unmarshal(b, &contract); err != nil {
		t.Fatal(err)
	}
	// What the CMS DPC export carries, by table, for every row and for
	// some row (it has no pharmacy claims).
	dpcEveryRow := map[string][]string{
		"eligibility": {"person_id", "member_id", "subscriber_id", "gender", "birth_date", "enrollment_start_date",
			"enrollment_end_date", "payer", "payer_type", "plan", "medicare_status_code", "group_id", "first_name", "last_name",
			"subscriber_relation", "state", "zip_code", "data_source", "file_name", "file_date", "ingest_datetime"},
		"medical_claim": {"claim_id", "claim_line_number", "claim_type", "person_id", "member_id", "payer", "claim_start_date",
			"claim_end_date", "data_source", "file_name", "file_date", "ingest_datetime"},
	}
	dpcSomeRow := map[string][]string{
		"eligibility": {"original_reason_entitlement_code", "death_date", "middle_name"},
		"medical_claim": {"claim_line_start_date", "hcpcs_code", "place_of_service_code", "rendering_npi", "diagnosis_code_type", "diagnosis_code_1", "diagnosis_code_2", "charge_amount", "allowed_amount", "paid_amount",
			"admission_date", "discharge_date", "admit_type_code", "admit_source_code", "discharge_disposition_code", "drg_code_type", "drg_code", "hcpcs_modifier_1", "revenue_center_code", "bill_type_code"},
	}
	for _, d := range datasets() {
		t.Run(d.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "warehouse.duckdb")
			d.build(t, path)
			w, err := lduckdb.OpenReadOnly(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for _, table := range tuvaBuilt {
				m := contract.Models[table]
				view := "tuva." + table
				// Columns and types, in order.
				cols, err := w.Query(t.Context(), "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'tuva' AND table_name = ? ORDER BY column_index", table)
				if err != nil {
					t.Fatal(err)
				}
				var names, types []string
				for cols.Next() {
					var n, ty string
					cols.Scan(&n, &ty)
					names, types = append(names, n), append(types, ty)
				}
				cols.Close()
				var want []string
				for i, c := range m.Columns {
					want = append(want, c.Name)
					if c.DataType != nil && i < len(types) && !slices.Contains(tuvaTypes[*c.DataType], types[i]) {
						t.Errorf("%s.%s: %s, want Tuva's %s", view, c.Name, types[i], *c.DataType)
					}
				}
				if !slices.Equal(names, want) {
					t.Fatalf("%s columns:\n got %v\nwant %v", view, names, want)
				}
				// The grain is unique.
				if got := queryRows(t, w, "SELECT (count(*) - count(DISTINCT ("+strings.Join(m.Grain, ", ")+")))::VARCHAR FROM "+view); got[0][0] != "0" {
					t.Errorf("%s: %s rows share their grain %v", view, got[0][0], m.Grain)
				}
				for _, c := range m.Columns {
					if c.NotNull == "error" {
						if got := queryRows(t, w, "SELECT count(*)::VARCHAR FROM "+view+" WHERE "+c.Name+" IS NULL"); got[0][0] != "0" {
							t.Errorf("%s.%s: %s nulls, which Tuva refuses", view, c.Name, got[0][0])
						}
					}
					if len(c.AcceptedValues) > 0 {
						var vals []string
						for _, v := range c.AcceptedValues {
							if s, ok := v.(string); ok {
								vals = append(vals, "'"+s+"'")
							}
						}
						expr := c.Name + "::VARCHAR"
						if c.DataType != nil && *c.DataType == "boolean" {
							expr = c.Name + "::INTEGER::VARCHAR"
						}
						q := "SELECT string_agg(DISTINCT " + expr + ", ', ')  FROM " + view + " WHERE " + c.Name + " IS NOT NULL AND " + expr + " NOT IN (" + strings.Join(vals, ", ") + ")"
						if got := queryRows(t, w, q); got[0][0] != "NULL" && got[0][0] != "" {
							t.Errorf("%s.%s: values %s are not among Tuva's %v", view, c.Name, got[0][0], c.AcceptedValues)
						}
					}
				}
				if d.name != "cms-dpc" || dpcEveryRow[table] == nil {
					continue
				}
				if got := queryRows(t, w, "SELECT count(*)::VARCHAR FROM "+view); got[0][0] == "0" {
					t.Fatalf("%s: no rows from the CMS DPC export", view)
				}
				for _, c := range dpcEveryRow[table] {
					if got := queryRows(t, w, "SELECT count(*)::VARCHAR FROM "+view+" WHERE "+c+" IS NULL"); got[0][0] != "0" {
						t.Errorf("%s.%s: null in %s rows of the CMS DPC export, which carries it", view, c, got[0][0])
					}
				}
				for _, c := range dpcSomeRow[table] {
					if got := queryRows(t, w, "SELECT count("+c+")::VARCHAR FROM "+view); got[0][0] == "0" {
						t.Errorf("%s.%s: null in every row of the CMS DPC export, which carries it", view, c)
					}
				}
			}
		})
	}
}
