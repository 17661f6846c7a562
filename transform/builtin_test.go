package transform_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fixtures"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// runBuiltin transforms every file matching glob under dir with the
// built-in views; pretty-printed JSON files are compacted to one line.
func runBuiltin(t *testing.T, dir, glob string) (*transform.MemSink, transform.Stats) {
	t.Helper()
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	e, err := transform.NewEngine(views, transform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nd := fixtures.NDJSON(t, fixtures.Files(t, dir, glob)...)
	sink := transform.NewMemSink()
	t.Cleanup(sink.Release)
	st, err := e.Transform(t.Context(), glob, bytes.NewReader(nd), sink)
	if err != nil {
		t.Fatal(err)
	}
	return sink, st
}

func TestBuiltinViewsCompile(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v.KeyColumn() == "" {
			t.Errorf("%s: no key column", v.Name())
		}
		for _, c := range v.Columns() {
			if c.Description == "" {
				t.Errorf("%s.%s: no description", v.Name(), c.Name)
			}
		}
	}
}

func TestBuiltinCMSDPC(t *testing.T) {
	sink, st := runBuiltin(t, fixtures.Dir(t, "cms-dpc"), "*.ndjson")
	checkBuiltin(t, sink, st, map[string]int64{
		"_resources": 48, "patient": 1, "patient_identifier": 2, "coverage": 4, "eob": 43, "eob_item": 151,
		"eob_item_adjudication": 1541, "eob_diagnosis": 119, "eob_care_team": 291,
	}, map[string]string{
		"patient":  `{"address_line":null,"birth_date":"1999-06-01","city":null,"deceased":true,"deceased_date_time":"1981-03-17T00:00:00Z","email":null,"ethnicity_code":null,"family":"Doe","gender":"female","given":"Jane","id":"-19990000002208","mbi":"3S58A00AA00","member_id":"-19990000002208","meta_last_updated":"2021-06-08T01:50:49.05Z","middle_name":"X","name_suffix":null,"phone":null,"postal_code":"99999","race_code":"UNK","state":"21"}`,
		"coverage": `{"dual_status_code":"AA","group_name":null,"group_value":"Medicare","id":"part-a--19990000002208","medicare_status_code":"10","meta_last_updated":"2021-06-08T01:50:49.05Z","orec_code":"0","patient_id":"-19990000002208","payor_id":null,"payor_name":"Centers for Medicare and Medicaid Services","period_end":null,"period_start":"1983-03-24","plan_name":null,"plan_value":"Part A","relationship_code":"self","status":"active","subscriber_id":"3S58A00AA00","type_code":"SUBSIDIZ"}`,
		"eob_item": `{"allowed":"60","coinsurance":"0","copay":null,"deductible":"0","eob_id":"carrier--10177349616","idx":0,"modifier_1":null,"modifier_2":null,"modifier_3":null,"modifier_4":null,"modifier_5":null,"ndc":null,"noncovered":null,"paid":"10","place_of_service":"99","quantity":"1","revenue_code":null,"sequence":1,"service_code":"88164","service_system":"https://bluebutton.cms.gov/resources/codesystem/hcpcs","serviced_end":"2000-11-01","serviced_start":"2000-11-01","submitted":"60"}`,
	})
}

func TestBuiltinCARINBB(t *testing.T) {
	sink, st := runBuiltin(t, fixtures.Dir(t, "carin-bb"), "*.json")
	checkBuiltin(t, sink, st, map[string]int64{
		"_resources": 15, "patient": 1, "patient_identifier": 1, "coverage": 2, "eob": 3, "eob_item": 21,
		"eob_item_adjudication": 54, "eob_diagnosis": 10, "eob_procedure": 3, "eob_care_team": 6,
		"organization": 6, "practitioner": 3,
	}, map[string]string{
		"eob":      `{"admission_end":null,"admission_start":"2017-05-23","admit_source_code":null,"admit_type_code":null,"bill_type_code":null,"billable_period_end":"2017-05-23","billable_period_start":"2017-05-23","claim_subtype":"inpatient","claim_type":"institutional","created":"2017-06-01T04:00:00Z","days_supply":null,"discharge_status_code":null,"drg_code":null,"drg_system":null,"facility_id":null,"facility_npi":null,"id":"InpatientEOBExample1","insurer_id":"PayerOrganizationExample1","meta_last_updated":"2020-04-28T19:39:36Z","network_status":"innetwork","outcome":"complete","patient_id":"ExamplePatient1","payment_amount":null,"payment_date":null,"provider_id":"ProviderOrganization3","provider_npi":null,"provider_tin":null,"refills":null,"status":"active","total_paid":"1393.57","total_submitted":"7147.2","use":"claim"}`,
		"coverage": `{"dual_status_code":null,"group_name":"MEDICARE HMO PLAN","group_value":"MCHMO1","id":"CoverageEx1","medicare_status_code":null,"meta_last_updated":"2020-10-30T13:48:01.846275Z","orec_code":null,"patient_id":"ExamplePatient1","payor_id":"PayerOrganizationExample1","payor_name":"UPMC Health Plan","period_end":null,"period_start":"2020-01-01","plan_name":"GR5-HMO DEDUCTIBLE","plan_value":"GR5","relationship_code":"self","status":"active","subscriber_id":"888009335","type_code":null}`,
	})
}

// checkBuiltin compares row counts per table and checks that some tables
// hold a given row (batches arrive from several workers, in no fixed
// order).
func checkBuiltin(t *testing.T, sink *transform.MemSink, st transform.Stats, rows map[string]int64, first map[string]string) {
	t.Helper()
	if diff := cmp.Diff(rows, st.Rows); diff != "" {
		t.Errorf("rows per table (-want +got):\n%s", diff)
	}
	if len(sink.Rejects) != 0 {
		t.Errorf("rejects: %+v", sink.Rejects)
	}
	for table, want := range first {
		s, err := sink.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Split(s, "\n"), want) {
			t.Errorf("%s: no row %s", table, want)
		}
	}
}
