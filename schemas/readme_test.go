package schemas_test

import (
	"flag"
	"os"
	"testing"

	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

var update = flag.Bool("update", false, "rewrite README.md from the views")

// TestReadmeMatchesViews keeps the table documentation true to the views.
func TestReadmeMatchesViews(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	want := transform.Markdown(views)
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("schemas/README.md is out of date with the views: run go test ./schemas -update and review the diff")
	}
	for _, v := range views {
		for _, c := range v.Columns() {
			if c.Description == "" {
				t.Errorf("%s.%s has no description", v.Name(), c.Name)
			}
		}
	}
}
