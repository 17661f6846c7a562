package fhirpath

import (
	"errors"
	"go/token"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fuzzcheck"
	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// sameTree ignores positions (a canonical form lays the source out anew)
// and the unexported values derived from the exported fields.
var sameTree = cmp.FilterPath(func(p cmp.Path) bool {
	sf, ok := p.Last().(cmp.StructField)
	return ok && (!token.IsExported(sf.Name()) || sf.Name() == "Pos")
}, cmp.Ignore())

// FuzzExpr parses hostile expressions (user views are files anybody may
// write) and checks:
//   - an error is a *Error whose line and column lie inside the source;
//   - parsing allocates in proportion to the source;
//   - the canonical String() parses back to the same tree and prints the
//     same text again;
//   - evaluated over every resource of planResources, the compiled plan
//     (where there is one) and EvalOne give what the general evaluator
//     gives, and every evaluation error wraps ErrEval.
func FuzzExpr(f *testing.F) {
	for _, s := range planExpressions {
		f.Add(s)
	}
	for _, s := range []string{
		"name.where(use='official').family", "'it\\'s' & %`a-b`", "@2020-01-02T10:00:00Z", "@T10:30",
		"value is Quantity", "(a or b) and c", "-1 + 2 * 3 div 4 mod 5", "name[0].given[1]",
		"name.given.join(',')", "birthDate.lowBoundary()", "iif(gender = 'female', 'F', 'M')",
		"`div`.x", "a\n  )", "'abc", "first(1)", "$this.value", "{} implies false", "repeat(item)",
		"extension('http://u').value.ofType(Reference).getReferenceKey()", "1.5e", "@@", "%",
	} {
		f.Add(s)
	}
	var docs []*jsondoc.Value
	for _, src := range planResources {
		var p jsondoc.Parser // each document keeps its own parser's nodes
		v, err := p.ParseString(src)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, v)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return // long inputs only slow the search; depth is capped anyway
		}
		var e *Expr
		var err error
		fuzzcheck.Bounded(t, "Parse", len(src), 1024, func() { e, err = Parse(src) })
		if err != nil {
			checkParseError(t, src, err)
			return
		}
		canon := e.String()
		e2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if diff := cmp.Diff(e.Root(), e2.Root(), sameTree); diff != "" {
			t.Fatalf("canonical form %q parses to another tree (-source +canonical):\n%s", canon, diff)
		}
		if again := e2.String(); again != canon {
			t.Fatalf("String() is not stable: %q then %q", canon, again)
		}
		for i, doc := range docs {
			res := Object(doc)
			ctx := &Context{Resource: res, Constants: map[string]Collection{"greeting": {String("hello")}}}
			focus := Collection{res}
			slow, serr := e.Eval(&Context{Resource: res, Constants: ctx.Constants, General: true}, focus)
			if serr != nil && !errors.Is(serr, ErrEval) {
				t.Fatalf("%s on resource %d: error %v does not wrap ErrEval", src, i, serr)
			}
			fast, ferr := e.Eval(ctx, focus)
			if (ferr != nil) != (serr != nil) || cmp.Diff(describe(slow), describe(fast)) != "" {
				t.Fatalf("%s on resource %d: plan gave %v %v, general %v %v", src, i, describe(fast), ferr, describe(slow), serr)
			}
			if msg := checkOne(e, ctx, focus, slow, serr); msg != "" {
				t.Fatalf("%s on resource %d: %s", src, i, msg)
			}
		}
	})
}

// checkParseError checks that err is a *Error locating a place in src.
func checkParseError(t *testing.T, src string, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Parse(%q) error %T %v is not a *fhirpath.Error", src, err, err)
	}
	lines := strings.Split(src, "\n")
	if pe.Line < 1 || pe.Line > len(lines) || pe.Col < 1 || pe.Col > len(lines[pe.Line-1])+1 {
		t.Fatalf("Parse(%q) error %q: position %d:%d is outside the source", src, err, pe.Line, pe.Col)
	}
	if !strings.HasPrefix(err.Error(), "fhirpath: ") || !utf8.ValidString(pe.Msg) && utf8.ValidString(src) {
		t.Fatalf("Parse(%q) error %q lacks the package prefix or is not UTF-8", src, err)
	}
}
