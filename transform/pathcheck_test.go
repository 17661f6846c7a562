package transform_test

import (
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// TestBuiltinViewPathsCheck: every path of the built-in views names
// elements FHIR R4 has; the checker finds nothing to say about them.
func TestBuiltinViewPathsCheck(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		for _, p := range v.CheckPaths() {
			t.Errorf("%s: %v %s", v.Name(), p.Error, p.Message)
		}
	}
}

// TestCheckPaths: what a user's view may get wrong in its paths, and what
// the checker must leave alone.
func TestCheckPaths(t *testing.T) {
	tests := []struct {
		name    string
		select_ string // the view's select array
		want    []string
	}{
		{"misspelt member", `[{"column":[{"name":"id","path":"id"},{"name":"f","path":"name.famly.first()"}]}]`,
			[]string{`error: column "f", path "name.famly.first()": HumanName has no element "famly" (did you mean "family"?)`}},
		{"misspelt at the top", `[{"column":[{"name":"id","path":"id"},{"name":"b","path":"birthdate"}]}]`,
			[]string{`error: column "b", path "birthdate": Patient has no element "birthdate" (did you mean "birthDate"?)`}},
		{"in a forEach", `[{"column":[{"name":"id","path":"id"}]},{"forEach":"contact.nmae","column":[{"name":"g","path":"given.first()"}]}]`,
			[]string{`error: forEach, path "contact.nmae": PatientContact has no element "nmae" (did you mean "name"?)`}},
		{"below a forEach", `[{"column":[{"name":"id","path":"id"}]},{"forEach":"address","column":[{"name":"c","path":"cty"}]}]`,
			[]string{`error: column "c", path "cty": Address has no element "cty" (did you mean "city"?)`}},
		{"inside where", `[{"column":[{"name":"id","path":"id"},{"name":"m","path":"identifier.where(typ.coding.code = 'MB').value.first()"}]}]`,
			[]string{`error: column "m", path "identifier.where(typ.coding.code = 'MB').value.first()": Identifier has no element "typ" (did you mean "type"?)`}},
		{"below a primitive", `[{"column":[{"name":"id","path":"id"},{"name":"g","path":"gender.code"}]}]`,
			[]string{`error: column "g", path "gender.code": a primitive value (it has only id and extension) has no element "code"`}},
		{"below a choice of primitives", `[{"column":[{"name":"id","path":"id"},{"name":"d","path":"deceased.unit"}]}]`,
			[]string{`error: column "d", path "deceased.unit": a primitive value (it has only id and extension) has no element "unit"`}},
		{"through a choice is a warning", `Observation:[{"column":[{"name":"id","path":"id"},{"name":"u","path":"value.unit"},{"name":"x","path":"value.untis"}]}]`,
			[]string{`warning: column "x", path "value.untis": Quantity or CodeableConcept or a primitive value or Range`}},
		{"repeat starts again from what it yields", `QuestionnaireResponse:[{"column":[{"name":"id","path":"id"}]},{"repeat":["item","answer.item"],"column":[{"name":"l","path":"linkId"}]}]`, nil},
		{"repeat misspelt", `QuestionnaireResponse:[{"column":[{"name":"id","path":"id"}]},{"repeat":["item","answr.item"],"column":[{"name":"l","path":"linkId"}]}]`,
			[]string{`error: repeat, path "answr.item": QuestionnaireResponse or QuestionnaireResponseItem has no element "answr"`}},
		{"all fine", `[{"column":[{"name":"id","path":"getResourceKey()"},
			{"name":"f","path":"Patient.name.where(use = 'official').family.first()"},
			{"name":"r","path":"extension('http://x').extension('ombCategory').value.ofType(Coding).code.first()"},
			{"name":"g","path":"generalPractitioner.getReferenceKey(Practitioner).first()"},
			{"name":"d","path":"iif(deceased.ofType(dateTime).exists(), deceased.ofType(dateTime), birthDate)"},
			{"name":"c","path":"contained.ofType(Organization).name.first()"},
			{"name":"x","path":"contained.anything.first()"},
			{"name":"p","path":"%resource.managingOrganization.reference"},
			{"name":"s","path":"birthDate.extension.url.first()"},
			{"name":"k","path":"(telecom | contact.telecom).value.first()"}]},
			{"forEach":"name","column":[{"name":"gv","path":"given.join(' ')"},{"name":"u","path":"$this.use"}]}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource, sel, ok := strings.Cut(tt.select_, ":[")
			if !ok || strings.ContainsAny(resource, `[{"`) {
				resource, sel = "Patient", tt.select_[1:]
			}
			v, err := transform.CompileView([]byte(`{"resourceType":"ViewDefinition","name":"v","resource":"` + resource + `","select":[` + sel + `}`))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range v.CheckPaths() {
				kind := "warning"
				if p.Error {
					kind = "error"
				}
				_, msg, _ := strings.Cut(p.Message, `view "v", `)
				got = append(got, kind+": "+msg)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n%s\nwant it to start:\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}
}
