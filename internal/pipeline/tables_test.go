package pipeline_test

import (
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// TestTablesReadTheViewsTags: partitions come from the views' column tags,
// the built-in ones and a user's alike; a tag that cannot work is refused
// naming the view.
func TestTablesReadTheViewsTags(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	view := func(tag, typ string) *transform.View {
		t.Helper()
		v, err := transform.CompileView([]byte(`{"name":"claim_dates","resource":"Claim","select":[{"column":[
			{"name":"id","path":"id"},
			{"name":"created","path":"created","type":"` + typ + `","tag":[{"name":"fhirlake/partition","value":"` + tag + `"}]}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tables, err := pipeline.Tables(append(views, view("created_year", "dateTime")))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tb := range tables {
		if tb.Partition != nil {
			got[tb.Name] = tb.Partition.Column + " " + tb.Partition.Name
		}
	}
	want := map[string]string{"eob": "billable_period_start service_year", "eob_item": "serviced_start service_year",
		"observation": "effective_start effective_year", "claim_dates": "created created_year"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s partition %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("partitions %v", got)
	}
	for _, c := range []struct{ tag, typ, want string }{
		{"created_year", "string", "is not a date or dateTime"},
		{"Bad Key", "date", "must be a new snake_case name"},
		{load.DataSource, "date", "must be a new snake_case name"},
	} {
		if _, err := pipeline.Tables([]*transform.View{view(c.tag, c.typ)}); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "claim_dates") {
			t.Errorf("tag %q on a %s: %v, want %q", c.tag, c.typ, err, c.want)
		}
	}
}

// TestTablesNameCodedColumns: a view's single-valued code and uri columns
// are its coded ones (stored dictionary-encoded); a collection, a string
// or the key is not, even when typed code.
func TestTablesNameCodedColumns(t *testing.T) {
	v, err := transform.CompileView([]byte(`{"name":"claim_codes","resource":"Claim","select":[{"column":[
		{"name":"id","path":"getResourceKey()","type":"code"},
		{"name":"status","path":"status","type":"code"},
		{"name":"use","path":"use"},
		{"name":"type_system","path":"type.coding.system.first()","type":"uri"},
		{"name":"type_codes","path":"type.coding.code","type":"code","collection":true},
		{"name":"created","path":"created","type":"dateTime"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pipeline.Tables([]*transform.View{v})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(tables[0].Coded, ","), "status,type_system"; got != want {
		t.Errorf("coded columns %q, want %q", got, want)
	}
}
