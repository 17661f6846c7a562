package fhirpath

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// planResources exercise the shapes a plan must either handle exactly like
// the general evaluator or hand over to it: arrays where one item is
// usual, numbers, booleans, nulls, objects where strings are usual,
// choice elements and missing elements.
var planResources = []string{
	patient, observation, rangeObs,
	`{"resourceType":"ExplanationOfBenefit","id":"e1","patient":{"reference":"Patient/p1"},
	 "type":{"coding":[{"system":"s1","code":"a"},{"system":"http://x/claim-type","code":"b"},{"system":"http://x/claim-type","code":"c"}]},
	 "subType":{"coding":[{"system":"http://carin/CodeSystem/x","code":"inpatient"}]},
	 "item":[{"sequence":1,"servicedDate":"2020-01-02","quantity":{"value":2.50},
	   "adjudication":[{"category":{"coding":[{"code":"submitted"}]},"amount":{"value":10.5}},
	                   {"category":{"coding":[{"code":"x"},{"code":"eligible"}]},"amount":{"value":7}},
	                   {"category":{"coding":[{"code":["eligible","paid"]}]},"amount":{"value":8}}]},
	  {"sequence":2,"servicedPeriod":{"start":"2020-02-01","end":"2020-02-03"}}],
	 "total":[{"category":{"coding":[{"system":"http://a","code":"submitted"}]},"amount":{"value":1}},
	          {"category":{"coding":[{"system":"http://b","code":"benefit"},{"system":"http://a","code":"benefit"}]},"amount":{"value":2}}]}`,
	// Odd shapes.
	`{"resourceType":"ExplanationOfBenefit","id":"e2","patient":{"reference":"Organization/o1"},
	 "type":{"coding":[{"system":["http://x/claim-type","y"],"code":"a"},{"system":3,"code":"b"},{"system":null},{"code":"c"},"text",null]},
	 "subType":{"coding":[{"system":["http://carin/a","http://carin/b"],"code":"two"}]},
	 "item":{"sequence":"one","adjudication":[{"category":{"coding":{"code":"submitted"}},"amount":{"value":[1,2]}}, 5, null]},
	 "total":[{"category":null},{"category":{"coding":[{"system":"http://a"}]},"amount":{"value":true}}]}`,
	`{"resourceType":"ExplanationOfBenefit","id":"e3","subType":{"coding":[{"system":7,"code":"num"}]},
	 "patient":[{"reference":"Patient/a"},{"reference":"Patient/b/_history/1"},{"reference":"urn:uuid:u"},{"reference":"#c"},{"reference":"Patient/"}]}`,
	`{"resourceType":"Observation","id":"o3","valueCodeableConcept":{"coding":[{"code":"x"},{"code":"y"}]},
	 "effectivePeriod":{"start":"2020-01-01T10:00:00Z"},"component":[{"valueString":"s"},{"valueBoolean":true},{"valueQuantity":{"code":"kg"}}],
	 "extension":[{"url":"http://u","valueReference":{"reference":"Practitioner/pr"}},{"url":"http://v","valueString":"no"}]}`,
	`{"resourceType":"Observation","id":"o4","valueString":"txt","effectiveInstant":"2020-01-01T10:00:00.123Z","value":null}`,
	`{"id":"no-type","code":{"coding":[{"system":"http://loinc.org","code":"1"}]}}`,
	// Choice elements before the plain member, two of them, escaped keys.
	`{"resourceType":"Observation","id":"o5","valueString":"first","valueBoolean":false,"value":{"coding":[{"code":"plain"}]},
	 "effectiveDateTime":"2020-01-01","effective\u0044ateTime":"2021-01-01","i\u0064":"dup","st\u0061tus":"final"}`,
	`{"resourceType":"Observation","id":"o6","v\u0061lueQuantity":{"unit":"mg"},"code":null,"code":{"coding":[{"system":"http://loinc.org","code":"2"}]}}`,
}

// planExpressions are the paths of the built-in views and their variants.
var planExpressions = []string{
	"id", "meta.lastUpdated", "name.family", "name.given", "item.sequence", "item", "name", "gender",
	"patient.getReferenceKey(Patient)", "patient.getReferenceKey()", "managingOrganization.getReferenceKey(Organization)",
	"generalPractitioner.getReferenceKey()", "getResourceKey()", "item.getResourceKey()",
	"type.coding.where(system = 'http://x/claim-type').code.first()",
	"type.coding.where(system = 'http://x/claim-type').code",
	"type.coding.where(system != 'http://x/claim-type').code",
	"type.coding.where(system = 'http://x/claim-type' or system = 's1').system.first()",
	"subType.coding.where(system.startsWith('http://carin/')).code.first()",
	"subType.coding.where(system.startsWith('http://carin/')).code",
	"item.adjudication.where(category.coding.exists(code = 'submitted')).amount.value.first()",
	"item.adjudication.where(category.coding.exists(code = 'eligible' or code = 'paid')).amount.value.first()",
	"item.adjudication.where(category.coding.exists(code = 'eligible')).amount.value",
	"total.where(category.coding.exists((system = 'http://a' and code = 'submitted') or (system = 'http://b' and code = 'x'))).amount.value.first()",
	"total.where(category.coding.exists((system = 'http://a' and code = 'benefit') or (system = 'http://b' and code = 'benefit'))).amount.value.first()",
	"total.where(category.coding.exists(system = 'http://a' and code.exists())).amount.value",
	"total.where(category.exists()).amount",
	"name.where(given.exists()).family", "name.exists(use = 'official')", "name.exists()", "telecom.exists()",
	"item.exists(sequence = 'one')", "type.coding.exists(system.startsWith('http'))",
	"(item.serviced.ofType(date) | item.serviced.ofType(Period).start).first()",
	"(item.serviced.ofType(date) | item.serviced.ofType(Period).end).first()",
	"(effective.ofType(dateTime) | effective.ofType(instant) | effective.ofType(Period).start).first()",
	"(value.ofType(Quantity).unit | value.ofType(Quantity).code).first()",
	"(component.value.ofType(Quantity).unit | component.value.ofType(Quantity).code).first()",
	"value.ofType(Quantity).value", "value.ofType(CodeableConcept).coding.code.first()", "value.ofType(string)",
	"value.ofType(boolean)", "component.value.ofType(string)", "value.ofType(Range).low.value", "valueQuantity.unit",
	"extension('http://u').value.ofType(Reference).getReferenceKey().first()", "extension('http://v').value",
	"name.given.first()", "name.first().given", "name.first().given.first()", "item.first().adjudication.amount.value",
	"where(id = 'e1').id", "code.coding.where(system = 'http://loinc.org').code.first()", "deceased", "deceased.ofType(boolean)",
	"(name.family | name.given).first()",
	"item.adjudication.where(category.coding.exists(code = 'submitted') and category.coding.exists(code = 'x').not()).amount.value.first()",
	"item.adjudication.where(category.coding.exists(code = 'x').not()).amount.value",
	"name.where(use = 'official' or use.empty()).family.first()", "name.where(use.empty().not()).given",
	"type.coding.where(system.startsWith('http://x').not()).code", "item.where(adjudication.empty()).sequence",
}

// TestPlanMatchesGeneral checks that every compiled plan gives what the
// general evaluator gives, errors included, and that the paths of the
// built-in views get a plan at all.
func TestPlanMatchesGeneral(t *testing.T) {
	var p jsondoc.Parser
	for _, expr := range planExpressions {
		e := MustParse(expr)
		if e.plan == nil {
			t.Errorf("%s: no plan", expr)
			continue
		}
		for i, src := range planResources {
			res, err := p.ParseString(src)
			if err != nil {
				t.Fatal(err)
			}
			focus := Collection{Object(res)}
			fast, ferr := e.Eval(&Context{Resource: Object(res)}, focus)
			slow, serr := e.Eval(&Context{Resource: Object(res), General: true}, focus)
			if (ferr != nil) != (serr != nil) {
				t.Errorf("%s on resource %d: plan error %v, general error %v", expr, i, ferr, serr)
				continue
			}
			if diff := cmp.Diff(describe(slow), describe(fast)); diff != "" {
				t.Errorf("%s on resource %d (-general +plan):\n%s", expr, i, diff)
			}
			if msg := checkOne(e, &Context{Resource: Object(res)}, focus, slow, serr); msg != "" {
				t.Errorf("%s on resource %d: %s", expr, i, msg)
			}
			// Over the items of a collection focus too, as forEach does.
			items, _ := MustParse("item | component | name").Eval(&Context{Resource: Object(res)}, focus)
			fast, ferr = e.Eval(&Context{Resource: Object(res)}, items)
			slow, serr = e.Eval(&Context{Resource: Object(res), General: true}, items)
			if (ferr != nil) != (serr != nil) || cmp.Diff(describe(slow), describe(fast)) != "" {
				t.Errorf("%s on the items of resource %d: plan %v %v, general %v %v", expr, i, describe(fast), ferr, describe(slow), serr)
			}
		}
	}
}

// TestPlanShapes lists paths that must stay with the general evaluator.
func TestPlanShapes(t *testing.T) {
	for _, expr := range []string{
		"Patient.name", "name.where($this.use = 'x')", "name[0]", "name.family | name.given", "%resource.id",
		"(name.where(given.startsWith('A')).family | name.family).first()", "name.where(use = 1)", "name.count()",
	} {
		if MustParse(expr).plan != nil {
			t.Errorf("%s: compiled to a plan, want the general evaluator", expr)
		}
	}
}

// checkOne compares EvalOne over focus with want and werr, what the
// general evaluator gave, and returns what differs.
func checkOne(e *Expr, ctx *Context, focus, want Collection, werr error) string {
	v, n, err := e.EvalOne(ctx, focus)
	if (err != nil) != (werr != nil) {
		return fmt.Sprintf("EvalOne error %v, general error %v", err, werr)
	}
	if err != nil {
		return ""
	}
	if n != min(len(want), 2) {
		return fmt.Sprintf("EvalOne counted %d items, general gave %d", n, len(want))
	}
	if n > 0 && describe(Collection{*v})[0] != describe(want[:1])[0] {
		return fmt.Sprintf("EvalOne gave %v first, general %v", describe(Collection{*v}), describe(want[:1]))
	}
	return ""
}

func describe(c Collection) []string {
	var out []string
	for _, v := range c {
		out = append(out, fmt.Sprintf("%d %q %v", v.Kind(), v.Type(), goValue(v)))
	}
	return out
}

// TestPlanMemo evaluates every expression over one document with one
// Context, as views do, so that remembered choice lookups are reused, and
// checks the results against fresh evaluations.
func TestPlanMemo(t *testing.T) {
	var p jsondoc.Parser
	var exprs []*Expr
	for _, expr := range planExpressions {
		exprs = append(exprs, MustParse(expr))
	}
	ctx := Context{Keys: NewKeys(exprs...)}
	for i, src := range planResources {
		res, err := p.ParseString(src)
		if err != nil {
			t.Fatal(err)
		}
		ctx.Reset()
		ctx.Resource = Object(res)
		for _, general := range []bool{false, true} {
			ctx.General = general
			for _, expr := range planExpressions {
				e := MustParse(expr)
				focus := Collection{Object(res)}
				got, gerr := e.Eval(&ctx, focus)
				want, werr := e.Eval(&Context{Resource: Object(res), General: true}, focus)
				if (gerr != nil) != (werr != nil) || cmp.Diff(describe(want), describe(got)) != "" {
					t.Errorf("%s on resource %d (general %v): got %v %v, want %v %v", expr, i, general, describe(got), gerr, describe(want), werr)
				}
			}
		}
	}
}

// TestPlanRandomDocuments compares plans with the general evaluator on
// random documents built from the names the expressions use, with every
// kind of JSON value in every place.
func TestPlanRandomDocuments(t *testing.T) {
	names := []string{"system", "code", "value", "valueQuantity", "valueString", "valueBoolean", "coding", "category",
		"item", "adjudication", "amount", "reference", "patient", "type", "subType", "serviced", "servicedDate",
		"servicedPeriod", "start", "end", "effectiveDateTime", "effective", "url", "extension", "use", "family", "given",
		"name", "id", "resourceType", "total", "unit", "sequence", "component", "valueCodeableConcept"}
	strs := []string{"submitted", "eligible", "http://x/claim-type", "http://carin/CodeSystem/x", "http://a", "http://b",
		"benefit", "Patient/p1", "Organization/o", "urn:uuid:u", "2020-01-02", "official", "http://u", "", "x"}
	rng := rand.New(rand.NewPCG(1, 2))
	var gen func(depth int) string
	gen = func(depth int) string {
		switch k := rng.IntN(10); {
		case depth > 3 || k < 3:
			return strconv.Quote(strs[rng.IntN(len(strs))])
		case k == 3:
			return []string{"1", "2.50", "true", "false", "null", "-3e2"}[rng.IntN(6)]
		case k < 6:
			n := rng.IntN(4)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = gen(depth + 1)
			}
			return "[" + strings.Join(parts, ",") + "]"
		default:
			n := 1 + rng.IntN(5)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = strconv.Quote(names[rng.IntN(len(names))]) + ":" + gen(depth+1)
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
	}
	exprs := make([]*Expr, len(planExpressions))
	for i, src := range planExpressions {
		exprs[i] = MustParse(src)
	}
	var p, pf jsondoc.Parser
	ctx := Context{Keys: NewKeys(exprs...)}
	var general Context
	general.General = true
	// The same documents parsed with the filter of the expressions' names,
	// the Keys bound to it.
	fnames := []string{"resourceType", "id"}
	for _, e := range exprs {
		names, _ := e.MemberNames()
		fnames = append(fnames, names...)
	}
	filter := jsondoc.NewFilter(fnames...)
	bound := Context{Keys: ctx.Keys.Bind(filter), Filter: filter}
	if bound.Keys.filter == nil {
		t.Fatal("Keys not bound to the filter of their names")
	}
	var generalFiltered Context
	generalFiltered.General = true
	nonEmpty := 0
	// check evaluates every expression over res with ctx (plans) and
	// general, and compares the results and EvalOne's.
	check := func(what string, ctx, general *Context, res *jsondoc.Value) {
		ctx.Reset()
		ctx.Resource = Object(res)
		general.Reset()
		general.Resource = Object(res)
		for _, e := range exprs {
			focus := Collection{Object(res)}
			got, gerr := e.Eval(ctx, focus)
			want, werr := e.Eval(general, focus)
			if len(want) > 0 {
				nonEmpty++
			}
			if (gerr != nil) != (werr != nil) || cmp.Diff(describe(want), describe(got)) != "" {
				t.Fatalf("%s\n%s: plan %v %v, general %v %v", what, e, describe(got), gerr, describe(want), werr)
			}
			if msg := checkOne(e, ctx, focus, want, werr); msg != "" {
				t.Fatalf("%s\n%s: %s", what, e, msg)
			}
		}
	}
	for n := range 3000 {
		src := gen(0)
		if !strings.HasPrefix(src, "{") {
			src = `{"resourceType":"ExplanationOfBenefit","id":"r","item":` + src + `}`
		}
		res, err := p.ParseString(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		check(fmt.Sprintf("document %d %s", n, src), &ctx, &general, res)
		if res, err = pf.ParseFiltered([]byte(src), filter); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		check(fmt.Sprintf("filtered document %d %s", n, src), &bound, &generalFiltered, res)
	}
	t.Logf("%d non-empty results", nonEmpty)
}
