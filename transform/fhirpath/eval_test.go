package fhirpath

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

const patient = `{"resourceType":"Patient","id":"p1",
 "name":[{"use":"official","family":"Smith","given":["Ann","B"]},{"use":"maiden","family":"Jones"}],
 "gender":"female","birthDate":"1970-06","deceasedBoolean":false,
 "extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
   "extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3"}}]}],
 "managingOrganization":{"reference":"Organization/o9"},
 "generalPractitioner":[{"reference":"https://x.org/fhir/Practitioner/pr1/_history/2"}]}`

const observation = `{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.0,"unit":"mg"},
 "effectiveDateTime":"2010-10-10"}`

const rangeObs = `{"resourceType":"Observation","id":"o2","valueRange":{"low":{"value":2},"high":{"value":3}}}`

func TestEval(t *testing.T) {
	tests := []struct {
		expression string
		resource   string
		want       []any // Go values: string, int64, bool; decimals as "dec:<text>"
	}{
		{"name.family", patient, []any{"Smith", "Jones"}},
		{"Patient.name.given", patient, []any{"Ann", "B"}},
		{"name[1].family", patient, []any{"Jones"}},
		{"name[5].family", patient, nil},
		{"name.where(use = 'maiden').family", patient, []any{"Jones"}},
		{"name.where(use = 'x').exists()", patient, []any{false}},
		{"name.exists(use = 'official')", patient, []any{true}},
		{"telecom.empty()", patient, []any{true}},
		{"name.given.first()", patient, []any{"Ann"}},
		{"name.given.last()", patient, []any{"B"}},
		{"name.given.join(', ')", patient, []any{"Ann, B"}},
		{"name.given.join()", patient, []any{"AnnB"}},
		{"name[1].given.join(',')", patient, nil}, // nothing to join: empty, not ''
		{"telecom.value.join()", patient, nil},
		{"extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension('ombCategory').value.ofType(Coding).code", patient, []any{"2106-3"}},
		{"deceased.ofType(boolean)", patient, []any{false}},
		{"deceased.ofType(dateTime)", patient, nil},
		{"value.ofType(Quantity).unit", observation, []any{"mg"}},
		{"gender.ofType(string)", patient, []any{"female"}},
		{"getResourceKey()", patient, []any{"p1"}},
		{"managingOrganization.getReferenceKey()", patient, []any{"o9"}},
		{"managingOrganization.getReferenceKey(Organization)", patient, []any{"o9"}},
		{"managingOrganization.getReferenceKey(Patient)", patient, nil},
		{"generalPractitioner.getReferenceKey(Practitioner)", patient, []any{"pr1"}},
		{"%greeting + ' ' + name.family.first()", patient, []any{"hello Smith"}},
		{"name.family.first() & {} & '!'", patient, []any{"Smith!"}},
		{"gender = 'female' and deceased.ofType(boolean) = false", patient, []any{true}},
		{"gender = 'male' or {}", patient, nil},
		{"gender = 'male' xor true", patient, []any{true}},
		{"(gender = 'male').not()", patient, []any{true}},
		{"{} implies false", patient, nil},
		{"false implies {}", patient, []any{true}},
		{"gender != 'male'", patient, []any{true}},
		{"telecom = 'x'", patient, nil},
		{"1 < 2", patient, []any{true}},
		{"'a' >= 'b'", patient, []any{false}},
		{"value.ofType(Range).low.value + value.ofType(Range).high.value", rangeObs, []any{int64(5)}},
		{"value.ofType(Range).high.value / value.ofType(Range).low.value", rangeObs, []any{"dec:1.5"}},
		{"2 * 3 - 1", patient, []any{int64(5)}},
		{"7 div 2", patient, []any{int64(3)}},
		{"7 mod 2", patient, []any{int64(1)}},
		{"1.5 + 1", patient, []any{"dec:2.5"}},
		{"-value.ofType(Quantity).value", observation, []any{"dec:-1.0"}},
		{"value.ofType(Quantity).value.lowBoundary()", observation, []any{"dec:0.95"}},
		{"value.ofType(Quantity).value.highBoundary()", observation, []any{"dec:1.05"}},
		{"birthDate.lowBoundary()", patient, []any{"1970-06-01"}},
		{"birthDate.highBoundary()", patient, []any{"1970-06-30"}},
		{"effective.ofType(dateTime).lowBoundary()", observation, []any{"2010-10-10T00:00:00.000+14:00"}},
		{"effective.ofType(dateTime).highBoundary()", observation, []any{"2010-10-10T23:59:59.999-12:00"}},
		{"@T12:34.lowBoundary()", patient, []any{"12:34:00.000"}},
		{"name.where($this.use = 'official').given.count()", patient, []any{int64(2)}},
		{"name.select(family)", patient, []any{"Smith", "Jones"}},
		{"iif(gender = 'female', 'F', 'M')", patient, []any{"F"}},
		{"name.family | name.family", patient, []any{"Smith", "Jones"}},
		{"'Smith' in name.family", patient, []any{true}},
		{"gender is string", patient, []any{true}},
		{"%resource.id", patient, []any{"p1"}},
	}
	var p jsondoc.Parser
	for _, tt := range tests {
		t.Run(tt.expression, func(t *testing.T) {
			res, err := p.ParseString(tt.resource)
			if err != nil {
				t.Fatal(err)
			}
			e, err := Parse(tt.expression)
			if err != nil {
				t.Fatal(err)
			}
			ctx := &Context{Resource: Object(res), Constants: map[string]Collection{"greeting": {String("hello")}}}
			c, err := e.Eval(ctx, Collection{Object(res)})
			if err != nil {
				t.Fatal(err)
			}
			var got []any
			for _, v := range c {
				got = append(got, goValue(v))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.expression, diff)
			}
		})
	}
}

func goValue(v Value) any {
	switch v.Kind() {
	case KindBoolean:
		return v.Bool()
	case KindInteger:
		return v.Int()
	case KindDecimal:
		return "dec:" + v.Str()
	case KindObject:
		return string(v.JSON().AppendJSON(nil))
	}
	return v.Str()
}

func TestEvalErrors(t *testing.T) {
	var p jsondoc.Parser
	res, err := p.ParseString(patient)
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{
		"%undefined",
		"name.family < 3",
		"name.given.where(true) and true",
		"'a' - 1",
	} {
		t.Run(expr, func(t *testing.T) {
			_, err := MustParse(expr).Eval(&Context{Resource: Object(res)}, Collection{Object(res)})
			if err == nil {
				t.Errorf("Eval(%q) succeeded, want an error", expr)
			}
		})
	}
}

func TestSplitReference(t *testing.T) {
	tests := []struct {
		ref, typ, id string
		ok           bool
	}{
		{"Patient/123", "Patient", "123", true},
		{"Patient/123/_history/4", "Patient", "123", true},
		{"https://x/fhir/Patient/123/_history/2", "Patient", "123", true},
		{"a/b/c", "b", "c", true},
		{"urn:uuid:abc", "", "abc", true},
		{"urn:oid:1.2", "", "1.2", true},
		{"/abc", "", "abc", true},
		{"#c1", "", "", false},
		{"", "", "", false},
		{"Patient/", "", "", false},
		{"abc", "", "", false},
	}
	for _, tc := range tests {
		typ, id, ok := SplitReference(tc.ref)
		if typ != tc.typ || id != tc.id || ok != tc.ok {
			t.Errorf("SplitReference(%q) = %q, %q, %v; want %q, %q, %v", tc.ref, typ, id, ok, tc.typ, tc.id, tc.ok)
		}
	}
}
