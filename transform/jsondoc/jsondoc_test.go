package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// toAny converts v to what encoding/json decodes with UseNumber: maps
// (the last of duplicate names wins, as there), slices, strings,
// json.Number, bools and nil.
func toAny(v *Value) any {
	switch v.Type() {
	case TypeObject:
		m := map[string]any{}
		for c := v.First(); c != nil; c = c.Next() {
			m[c.Key()] = toAny(c)
		}
		return m
	case TypeArray:
		a := []any{}
		for e := v.First(); e != nil; e = e.Next() {
			a = append(a, toAny(e))
		}
		return a
	case TypeString:
		return v.Str()
	case TypeNumber:
		return json.Number(v.Str())
	case TypeTrue:
		return true
	case TypeFalse:
		return false
	}
	return nil
}

func stdDecode(t testing.TB, in string) (any, error) {
	t.Helper()
	if !json.Valid([]byte(in)) {
		return nil, errors.New("not valid JSON")
	}
	d := json.NewDecoder(strings.NewReader(in))
	d.UseNumber()
	var x any
	err := d.Decode(&x)
	return x, err
}

func TestParse(t *testing.T) {
	tests := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-12.5e+3`, `1E9`, `""`,
		` {"a" : [1, 2.50, "x", null, true, false, {}, []] } `,
		"{\"a\":\t\"b\",\r\n\"c\":{\"d\":[{\"e\":1}]}}",
		"[ 1 ,\n\t2 ,\r\n[ ] , { \"a\" :\r\n { \"b\" : \"c\" ,\t\"d\" :[ null ,true ] } } ]",
		`{"esc":"q\"b\\s\/n\nt\tr\rb\bf\fu\u00e9\u20ac","k\u0065y":1}`,
		`{"pair":"\ud83d\ude00","lone":"\ud800x","lowfirst":"\udc00"}`,
		`{"dup":1,"dup":2}`,
		`{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.20,"unit":"mg"}}`,
	}
	var p Parser
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			want, err := stdDecode(t, in)
			if err != nil {
				t.Fatalf("test input is not JSON: %v", err)
			}
			v, err := p.ParseString(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(want, toAny(v)); diff != "" {
				t.Errorf("(-encoding/json +jsondoc):\n%s", diff)
			}
			// AppendJSON gives JSON that means the same.
			again, err := stdDecode(t, string(v.AppendJSON(nil)))
			if err != nil {
				t.Fatalf("AppendJSON output %q: %v", v.AppendJSON(nil), err)
			}
			if diff := cmp.Diff(want, again); diff != "" {
				t.Errorf("AppendJSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{`{"a":1`, 6, "unexpected end of input"},
		{`{"a":1,}`, 7, "expected a member name"},
		{`{"a" 1}`, 5, "expected ':' after a member name"},
		{`{"a":1 "b":2}`, 7, "expected ',' or '}' in an object"},
		{`[1 2]`, 3, "expected ',' or ']' in an array"},
		{`[1,]`, 3, "expected a value"},
		{`{"a":tru}`, 5, "invalid literal"},
		{`{"a":nul}`, 5, "invalid literal"},
		{`01`, 1, "unexpected data after the top-level value"},
		{`-`, 0, "invalid number"},
		{`1.`, 0, "invalid number"},
		{`1.e5`, 0, "invalid number"},
		{`1e+`, 0, "invalid number"},
		{`+1`, 0, "expected a value"},
		{`.5`, 0, "expected a value"},
		{`"abc`, 0, "unterminated string"},
		{`"a\x"`, 2, "invalid escape"},
		{`"a\u12G4"`, 2, "invalid \\u escape"},
		{`{"a":1}}`, 7, "unexpected data after the top-level value"},
		{`{"a":1}{}`, 7, "unexpected data after the top-level value"},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), MaxDepth + 1, "nesting deeper than 300"},
	}
	var p Parser
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 20)], func(t *testing.T) {
			if _, err := stdDecode(t, tt.in); err == nil && !strings.HasPrefix(tt.in, "[[[") {
				t.Fatalf("encoding/json accepts %q", tt.in)
			}
			_, err := p.ParseString(tt.in)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, want a SyntaxError", tt.in, err)
			}
			if se.Offset != tt.offset || se.Msg != tt.msg {
				t.Errorf("Parse(%q) = %v, want offset %d, %q", tt.in, err, tt.offset, tt.msg)
			}
		})
	}
	for _, in := range []string{"", "  \n\t"} {
		if _, err := p.ParseString(in); !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) = %v, want ErrEmpty", in, err)
		}
	}
}

// TestReuse checks that a Parser overwrites the previous document and
// that the nodes of a document stay put while it is read.
func TestReuse(t *testing.T) {
	var p Parser
	big := `{"a":[` + strings.Repeat(`{"b":"\u00e9"},`, 500) + `1]}`
	if _, err := p.ParseString(big); err != nil {
		t.Fatal(err)
	}
	v, err := p.Parse([]byte(`{"x":"y","n":[1,2,3],"o":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Get("x").Str(); got != "y" {
		t.Errorf("x = %q", got)
	}
	if got := v.Get("n").Len(); got != 3 {
		t.Errorf("len(n) = %d", got)
	}
	if s, ok := v.Get("o").GetString("k"); !ok || s != "v" {
		t.Errorf("o.k = %q, %v", s, ok)
	}
	if v.Get("a") != nil || v.Get("n").Get("x") != nil {
		t.Error("Get found a member that is not there")
	}
	var nilV *Value
	if nilV.Get("a") != nil || nilV.First() != nil || nilV.Type() != 0 || nilV.Str() != "" {
		t.Error("nil Value is not absent")
	}
}

// FuzzParse compares Parse with encoding/json: both accept the same
// documents (but for the documented leniency about control characters
// and invalid UTF-8 in strings) and decode them to the same values.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"p1","name":[{"family":"Doe","given":["J\u00e9"]}]}`,
		`[1,-2.5e10,"a\"b",null,true,false,{}]`, `{"a":{"b":{"c":[[]]}}}`, `"\ud83d\ude00"`, `01`, `{"a":1,}`,
	} {
		f.Add([]byte(s))
	}
	filter := NewFilter("a", "id", "value")
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Parser
		checkFiltered(t, &p, in, filter)
		v, err := p.Parse(in)
		want, stdErr := stdDecode(t, string(in))
		lenient := !utf8.Valid(in) || bytes.ContainsFunc(in, func(r rune) bool { return r < 0x20 && r != ' ' && r != '\t' && r != '\n' && r != '\r' }) ||
			bytes.ContainsAny(in, "\t\n\r")
		switch {
		case err != nil && stdErr == nil:
			if strings.Contains(err.Error(), "nesting deeper") {
				return
			}
			t.Fatalf("Parse rejects what encoding/json accepts: %v", err)
		case err == nil && stdErr != nil && !lenient:
			if bytes.Count(in, []byte("[")) > MaxDepth || bytes.Count(in, []byte("{")) > MaxDepth {
				return
			}
			t.Fatalf("Parse accepts what encoding/json rejects (%v)", stdErr)
		case err == nil && stdErr == nil && utf8.Valid(in):
			if diff := cmp.Diff(want, toAny(v)); diff != "" {
				t.Fatalf("(-encoding/json +jsondoc):\n%s", diff)
			}
		}
	})
}

// checkFiltered checks that ParseFiltered fails exactly when Parse does,
// with the same error, and otherwise keeps exactly the top-level members
// the filter keeps, with the same values.
func checkFiltered(t *testing.T, p *Parser, in []byte, f *Filter) {
	t.Helper()
	fv, ferr := p.ParseFiltered(in, f)
	var got any
	if ferr == nil {
		got = toAny(fv)
	}
	var whole Parser // p's nodes hold fv
	v, err := whole.Parse(in)
	if (err == nil) != (ferr == nil) || err != nil && err.Error() != ferr.Error() {
		t.Fatalf("ParseFiltered error %v, Parse error %v", ferr, err)
	}
	if err != nil {
		return
	}
	want := toAny(v)
	if m, ok := want.(map[string]any); ok {
		// The first of duplicate names is the one Get finds; toAny keeps
		// the last, so compare member by member through Get.
		for k := range m {
			if !f.Keep(k) {
				delete(m, k)
			}
		}
		gm := got.(map[string]any)
		for k := range gm {
			if cmp.Diff(toAny(v.Get(k)), toAny(fv.Get(k))) != "" {
				t.Fatalf("member %q differs", k)
			}
		}
		if len(gm) != len(m) {
			t.Fatalf("kept %d members, want %d", len(gm), len(m))
		}
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("filtered non-object (-want +got):\n%s", diff)
	}
}

func TestFilter(t *testing.T) {
	f := NewFilter("value", "id", "code", "")
	for key, want := range map[string]bool{
		"id": true, "value": true, "valueQuantity": true, "valueString": true, "code": true,
		"ids": false, "valuequantity": false, "valu": false, "codeSystem": true, "component": false, "": false, "i": false,
	} {
		if got := f.Keep(key); got != want {
			t.Errorf("Keep(%q) = %v, want %v", key, got, want)
		}
	}
	tests := []string{
		`{"id":"x","component":[{"code":{"coding":[{"code":"a\u00e9"}]}},1,2.5,true,false,null,"s\n"],"valueQuantity":{"value":1},"code":"c"}`,
		`{"big":{"deep":[[[{"a":[1,{"b":"\"q\""}]}]]]},"id":"y"}`,
		`{"id":"z"}`, `{}`, `[{"component":1}]`, `"top"`,
		"{ \"component\" :\n [ 1 , { \"a\" :\t2 } ] ,\r\n\"id\" : \"w\" , \"code\" :\n\"c\" }", `{"component": }`, `{"id": ,}`,
		"{\"component\":{\"a\":1, \"b\" :[2,\n{\"c\":\"d\" }],\t\"e\":{}},\"id\":\"v\"}", `{"component":{"a":1, }}`,
		`{"component":[1,2,}`, `{"component":"\x"}`, `{"component":tru,"id":"a"}`, `{"component":{"a" 1}}`,
		`{"component":[1 2]}`, `{"component":01}`, `{"component":{"a":1,}}`, `{"component":"abc`, `{"component":-}`,
		`{"component":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`,
	}
	var p Parser
	for _, in := range tests {
		checkFiltered(t, &p, []byte(in), f)
	}
	v, err := p.ParseFiltered([]byte(tests[0]), f)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("component") != nil || v.Len() != 3 || v.Get("code").Str() != "c" {
		t.Errorf("filtered document: %s", v.AppendJSON(nil))
	}
}

func TestFilterMatch(t *testing.T) {
	// "valueQuantity" is a name itself and a choice element of "value";
	// "valueQuantityX" is a choice element of both.
	f := NewFilter("value", "valueQuantity", "id", "v", "", "id", "n")
	if got, want := f.Names(), []string{"value", "valueQuantity", "id", "v", "n"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	type match struct {
		name  int
		exact bool
	}
	var p Parser
	v, err := p.ParseFiltered([]byte(`{"id":1,"valueQuantity":2,"valueString":3,"valueQuantityX":4,"vA":5,"other":6,"i\u0064":7,"n":{"id":8}}`), f)
	if err != nil {
		t.Fatal(err)
	}
	var got []match
	for m := v.First(); m != nil; m = m.Next() {
		name, exact := m.Match()
		got = append(got, match{name, exact})
	}
	want := []match{{2, true}, {1, true}, {0, false}, {1, false}, {3, false}, {2, true}, {4, true}}
	if !slices.Equal(got, want) {
		t.Errorf("matches %v, want %v", got, want)
	}
	if name, _ := v.Get("n").Get("id").Match(); name != -1 {
		t.Errorf("a nested member matched name %d, want -1", name)
	}
	if name, _ := v.Match(); name != -1 {
		t.Errorf("the document matched name %d, want -1", name)
	}
	if v, _ = p.ParseString(`{"id":1}`); v != nil {
		if name, _ := v.Get("id").Match(); name != -1 {
			t.Errorf("a member parsed without a filter matched name %d, want -1", name)
		}
	}
	if size := unsafe.Sizeof(Value{}); size != 48 {
		t.Errorf("a node takes %d bytes, want 48", size)
	}
}

// TestQuoteIndex checks the quote index against a byte-by-byte search, on
// documents of every length around the block size, and the SSE2 scan
// against the one in Go.
func TestQuoteIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{'"', '\\', 0x00, 0x80, 0xa2, 0xdc, 0xff, '!', '#', '[', ']'}
	var p Parser
	for n := range 300 {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				if rng.IntN(4) == 0 {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				} else {
					b[i] = 'a'
				}
			}
			s := string(b)
			p.in = s
			p.indexQuotes(s)
			for i := 0; i <= n; i++ {
				want := strings.IndexAny(s[i:], `"\`)
				if want < 0 {
					want = n
				} else {
					want += i
				}
				if got := p.quote(i); got != want {
					t.Fatalf("quote(%d) in %q = %d, want %d", i, s, got, want)
				}
			}
			full := n / 64 * 64
			m1, m2 := make([]uint64, n/64), make([]uint64, n/64)
			scanQuotes(s[:full], m1)
			scanQuotesGeneric(s[:full], m2)
			if !slices.Equal(m1, m2) {
				t.Fatalf("scanQuotes(%q) = %x; the Go version gives %x", s[:full], m1, m2)
			}
		}
	}
}
