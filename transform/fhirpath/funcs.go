package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// funcDef describes a built-in function. impl receives the evaluated
// target (base) and the focus the call was evaluated in, against which
// non-lambda arguments are evaluated.
type funcDef struct {
	minArgs, maxArgs int
	typeArg          bool // the first argument is a type specifier
	impl             func(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error)
}

func (d *funcDef) arity() string {
	switch {
	case d.minArgs == d.maxArgs && d.maxArgs == 1:
		return "1 argument"
	case d.minArgs == d.maxArgs:
		return fmt.Sprintf("%d arguments", d.maxArgs)
	}
	return fmt.Sprintf("%d to %d arguments", d.minArgs, d.maxArgs)
}

// functions is the supported subset of FHIRPath functions.
var functions map[string]*funcDef

func init() {
	functions = map[string]*funcDef{
		"empty":           {0, 0, false, fnEmpty},
		"exists":          {0, 1, false, fnExists},
		"all":             {1, 1, false, fnAll},
		"count":           {0, 0, false, fnCount},
		"where":           {1, 1, false, fnWhere},
		"select":          {1, 1, false, fnSelect},
		"first":           {0, 0, false, fnFirst},
		"last":            {0, 0, false, fnLast},
		"tail":            {0, 0, false, fnTail},
		"skip":            {1, 1, false, fnSkip},
		"take":            {1, 1, false, fnTake},
		"single":          {0, 0, false, fnSingle},
		"distinct":        {0, 0, false, fnDistinct},
		"not":             {0, 0, false, fnNot},
		"iif":             {2, 3, false, fnIif},
		"extension":       {1, 1, false, fnExtension},
		"ofType":          {1, 1, true, fnOfType},
		"join":            {0, 1, false, fnJoin},
		"toString":        {0, 0, false, fnToString},
		"hasValue":        {0, 0, false, fnHasValue},
		"startsWith":      {1, 1, false, fnStartsWith},
		"getResourceKey":  {0, 0, false, fnGetResourceKey},
		"getReferenceKey": {0, 1, true, fnGetReferenceKey},
		"lowBoundary":     {0, 1, false, fnLowBoundary},
		"highBoundary":    {0, 1, false, fnHighBoundary},
	}
}

// lambda evaluates arg once per item of base, with that item as focus,
// $this and $index.
func (ev *evaluator) lambda(arg Node, base Collection, f func(i int, r Collection) error) error {
	saveThis, saveIndex := ev.this, ev.index
	defer func() { ev.this, ev.index = saveThis, saveIndex }()
	for i := range base {
		item := base[i : i+1 : i+1]
		ev.this, ev.index = item, i
		r, err := ev.eval(arg, item)
		if err != nil {
			return err
		}
		if err := f(i, r); err != nil {
			return err
		}
	}
	return nil
}

// arg evaluates a non-lambda argument to at most one item.
func (ev *evaluator) arg(n *FunctionNode, i int, focus Collection) (Value, bool, error) {
	c, err := ev.eval(n.Args[i], focus)
	if err != nil {
		return Value{}, false, err
	}
	if len(c) > 1 {
		return Value{}, false, evalErrorf(n, "argument %d must be a single item", i+1)
	}
	if len(c) == 0 {
		return Value{}, false, nil
	}
	return c[0], true, nil
}

func fnEmpty(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	return boolColl(len(base) == 0), nil
}

func fnExists(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	if len(n.Args) == 1 {
		var err error
		if base, err = fnWhere(ev, n, base, focus); err != nil {
			return nil, err
		}
	}
	return boolColl(len(base) > 0), nil
}

func fnAll(ev *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	all := true
	err := ev.lambda(n.Args[0], base, func(_ int, r Collection) error {
		b, ok, err := singletonBool(n, r)
		if !ok || !b {
			all = false
		}
		return err
	})
	return boolColl(all), err
}

func fnCount(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	return Collection{Integer(int64(len(base)))}, nil
}

func fnWhere(ev *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	out := ev.alloc(len(base))
	err := ev.lambda(n.Args[0], base, func(i int, r Collection) error {
		b, ok, err := singletonBool(n, r)
		if ok && b {
			out = append(out, base[i])
		}
		return err
	})
	return out, err
}

func fnSelect(ev *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	var out Collection
	err := ev.lambda(n.Args[0], base, func(_ int, r Collection) error {
		out = append(out, r...)
		return nil
	})
	return out, err
}

func fnFirst(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	if len(base) == 0 {
		return nil, nil
	}
	return base[:1:1], nil
}

func fnLast(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	if len(base) == 0 {
		return nil, nil
	}
	return base[len(base)-1:], nil
}

func fnTail(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	if len(base) < 2 {
		return nil, nil
	}
	return base[1:], nil
}

func intArg(ev *evaluator, n *FunctionNode, focus Collection) (int, error) {
	v, ok, err := ev.arg(n, 0, focus)
	if err != nil {
		return 0, err
	}
	if !ok || v.kind != KindInteger {
		return 0, evalErrorf(n, "argument must be an integer")
	}
	return int(max(v.i, 0)), nil
}

func fnSkip(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	k, err := intArg(ev, n, focus)
	if err != nil || k >= len(base) {
		return nil, err
	}
	return base[k:], nil
}

func fnTake(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	k, err := intArg(ev, n, focus)
	if err != nil {
		return nil, err
	}
	return base[:min(k, len(base))], nil
}

func fnSingle(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	if len(base) > 1 {
		return nil, evalErrorf(n, "more than one item")
	}
	return base, nil
}

func fnDistinct(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	return distinct(base), nil
}

func fnNot(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	b, ok, err := singletonBool(n, base)
	if err != nil || !ok {
		return nil, err
	}
	return boolColl(!b), nil
}

func fnIif(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	c, err := ev.eval(n.Args[0], base)
	if err != nil {
		return nil, err
	}
	b, ok, err := singletonBool(n, c)
	if err != nil {
		return nil, err
	}
	if ok && b {
		return ev.eval(n.Args[1], base)
	}
	if len(n.Args) == 3 {
		return ev.eval(n.Args[2], base)
	}
	return nil, nil
}

func fnExtension(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	url, ok, err := ev.arg(n, 0, focus)
	if err != nil || !ok {
		return nil, err
	}
	var out Collection
	for _, ext := range ev.navigate(base, "extension") {
		if ext.kind == KindObject && ext.obj.Get("url").Str() == url.str {
			out = append(out, ext)
		}
	}
	return out, nil
}

func fnOfType(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	return ofType(base, n.Args[0].(*TypeNode)), nil
}

// fnJoin concatenates the string forms of its input with an optional
// separator. Joining nothing gives nothing (an empty collection, so a column
// is NULL), not an empty string: the SQL-on-FHIR v2 suite says so since the
// release that added the nested repeat tests.
func fnJoin(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	if len(base) == 0 {
		return nil, nil
	}
	sep := ""
	if len(n.Args) == 1 {
		v, ok, err := ev.arg(n, 0, focus)
		if err != nil {
			return nil, err
		}
		if ok {
			sep = v.Str()
		}
	}
	parts := make([]string, 0, len(base))
	for _, v := range base {
		if v.kind == KindObject {
			return nil, evalErrorf(n, "join needs primitive items")
		}
		parts = append(parts, v.Str())
	}
	return Collection{String(strings.Join(parts, sep))}, nil
}

func fnToString(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	if len(base) == 0 {
		return nil, nil
	}
	if len(base) > 1 || base[0].kind == KindObject {
		return nil, evalErrorf(n, "toString needs a single primitive")
	}
	return Collection{String(base[0].Str())}, nil
}

func fnHasValue(_ *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	return boolColl(len(base) == 1 && base[0].kind != KindObject), nil
}

func fnStartsWith(ev *evaluator, n *FunctionNode, base, focus Collection) (Collection, error) {
	p, ok, err := ev.arg(n, 0, focus)
	if err != nil || !ok || len(base) == 0 {
		return nil, err
	}
	if len(base) > 1 {
		return nil, evalErrorf(n, "startsWith needs a single string")
	}
	return boolColl(strings.HasPrefix(base[0].Str(), p.Str())), nil
}

func fnGetResourceKey(ev *evaluator, _ *FunctionNode, base, _ Collection) (Collection, error) {
	out := ev.alloc(len(base))
	for _, v := range base {
		if v.kind != KindObject {
			continue
		}
		if v.obj.Get("resourceType") == nil && ev.ctx.Resource.kind == KindObject {
			v = ev.ctx.Resource
		}
		if id, ok := v.obj.GetString("id"); ok {
			out = append(out, String(id))
		}
	}
	return out, nil
}

func fnGetReferenceKey(ev *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	want := ""
	if len(n.Args) == 1 {
		want = n.Args[0].(*TypeNode).Name
	}
	out := ev.alloc(len(base))
	for _, v := range base {
		if v.kind != KindObject {
			continue
		}
		typ, id, ok := SplitReference(v.obj.Get("reference").Str())
		if !ok || (want != "" && typ != want) {
			continue
		}
		out = append(out, String(id))
	}
	return out, nil
}

// SplitReference splits a literal reference ("Patient/123",
// "https://x/fhir/Patient/123/_history/2", "urn:uuid:abc") into resource
// type and id. urn references have an empty type.
func SplitReference(ref string) (typ, id string, ok bool) {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return "", "", false
	}
	if rest, found := strings.CutPrefix(ref, "urn:uuid:"); found {
		return "", rest, true
	}
	if rest, found := strings.CutPrefix(ref, "urn:oid:"); found {
		return "", rest, true
	}
	// The usual relative reference, Type/id, has one slash: two vector
	// searches settle it.
	if i := strings.IndexByte(ref, '/'); i > 0 && i < len(ref)-1 && strings.IndexByte(ref[i+1:], '/') < 0 {
		return ref[:i], ref[i+1:], true
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	// The last two parts between slashes, without splitting the rest.
	i := strings.LastIndexByte(ref, '/')
	if i < 0 || i == len(ref)-1 {
		return "", "", false
	}
	j := strings.LastIndexByte(ref[:i], '/')
	return ref[j+1 : i], ref[i+1:], true
}

func fnLowBoundary(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	return boundary(n, base, false)
}

func fnHighBoundary(_ *evaluator, n *FunctionNode, base, _ Collection) (Collection, error) {
	return boundary(n, base, true)
}

func boundary(n *FunctionNode, base Collection, high bool) (Collection, error) {
	if len(base) == 0 {
		return nil, nil
	}
	if len(base) > 1 {
		return nil, evalErrorf(n, "%s needs a single item", n.Name)
	}
	v := base[0]
	switch {
	case v.isNumber():
		text := v.Str()
		prec := 0
		if i := strings.IndexByte(text, '.'); i >= 0 {
			prec = len(text) - i - 1
		}
		half := 0.5
		for range prec {
			half /= 10
		}
		f := v.Float()
		if high {
			f += half
		} else {
			f -= half
		}
		return Collection{Decimal(strconv.FormatFloat(f, 'f', prec+1, 64))}, nil
	case v.kind == KindTime || v.typ == "time" || (v.kind == KindString && v.typ == "" && isTime(v.str)):
		if s, ok := TimeBoundary(v.str, high); ok {
			return Collection{Time(s)}, nil
		}
	case v.kind == KindDate || v.typ == "date" || (v.kind == KindString && v.typ == "" && isDate(v.str)):
		if s, ok := DateBoundary(v.str, high); ok {
			return Collection{Date(s)}, nil
		}
	case v.kind == KindDateTime || v.typ == "dateTime" || v.typ == "instant" || (v.kind == KindString && isDateTime(v.str)):
		if s, ok := DateTimeBoundary(v.str, high); ok {
			return Collection{DateTime(s)}, nil
		}
	}
	return nil, nil
}

// isDate reports whether s is YYYY, YYYY-MM or YYYY-MM-DD.
func isDate(s string) bool {
	_, _, _, n, ok := splitDate(s)
	return ok && n == len(s)
}

// isDateTime reports whether s is a date optionally followed by T and a
// (partial) time and zone.
func isDateTime(s string) bool {
	_, _, _, n, ok := splitDate(s)
	if !ok {
		return false
	}
	if n == len(s) {
		return true
	}
	if s[n] != 'T' {
		return false
	}
	_, _, ok = splitTime(s[n+1:], true)
	return ok
}

// isTime reports whether s is hh, hh:mm, hh:mm:ss or hh:mm:ss.fff.
func isTime(s string) bool {
	_, zone, ok := splitTime(s, false)
	return ok && zone == ""
}

func digits(s string, n int) bool {
	if len(s) < n {
		return false
	}
	for i := range n {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// splitDate parses the date prefix of s: year, month and day text (month
// and day "" when absent) and the length consumed.
func splitDate(s string) (y, m, d string, n int, ok bool) {
	if !digits(s, 4) {
		return "", "", "", 0, false
	}
	y, n = s[:4], 4
	if len(s) >= 7 && s[4] == '-' && digits(s[5:], 2) {
		m, n = s[5:7], 7
		if len(s) >= 10 && s[7] == '-' && digits(s[8:], 2) {
			d, n = s[8:10], 10
		}
	}
	return y, m, d, n, true
}

// splitTime splits a time into its clock part and zone ("Z", "+05:00").
func splitTime(s string, zoneOK bool) (clock, zone string, ok bool) {
	clock = s
	if i := strings.IndexAny(s, "Z+-"); i >= 0 {
		if !zoneOK {
			return "", "", false
		}
		clock, zone = s[:i], s[i:]
		if zone != "Z" && !(len(zone) == 6 && digits(zone[1:], 2) && zone[3] == ':' && digits(zone[4:], 2)) {
			return "", "", false
		}
	}
	if !digits(clock, 2) {
		return "", "", false
	}
	rest := clock[2:]
	for _, sep := range []byte{':', ':'} {
		if rest == "" {
			return clock, zone, true
		}
		if rest[0] != sep || !digits(rest[1:], 2) {
			return "", "", false
		}
		rest = rest[3:]
	}
	if rest == "" {
		return clock, zone, true
	}
	if rest[0] != '.' || len(rest) < 2 || !digits(rest[1:], len(rest)-1) {
		return "", "", false
	}
	return clock, zone, true
}

// fillClock completes a partial clock (hh[:mm[:ss[.fff]]]) to
// hh:mm:ss.fff at its low or high boundary.
func fillClock(clock string, high bool) string {
	fill := "00:00:00.000"
	if high {
		fill = "23:59:59.999"
	}
	frac := ""
	if i := strings.IndexByte(clock, '.'); i >= 0 {
		clock, frac = clock[:i], clock[i+1:]
	}
	out := clock + fill[len(clock):8]
	if frac == "" {
		return out + fill[8:]
	}
	pad := "000"
	if high {
		pad = "999"
	}
	if len(frac) < 3 {
		frac += pad[len(frac):]
	}
	return out + "." + frac[:3]
}

// DateBoundary returns the first (or, when high, the last) day of a
// partial date as YYYY-MM-DD.
func DateBoundary(s string, high bool) (string, bool) {
	y, m, d, n, ok := splitDate(s)
	if !ok || n != len(s) {
		return "", false
	}
	if m == "" {
		m = map[bool]string{false: "01", true: "12"}[high]
	}
	if d == "" {
		d = "01"
		if high {
			yi, _ := strconv.Atoi(y)
			mi, _ := strconv.Atoi(m)
			last := time.Date(yi, time.Month(mi)+1, 0, 0, 0, 0, 0, time.UTC).Day()
			d = strconv.Itoa(last)
		}
	}
	return y + "-" + m + "-" + d, true
}

// DateTimeBoundary returns the low (or high) boundary of a partial
// dateTime with millisecond precision. A missing zone becomes +14:00 for
// the low boundary and -12:00 for the high one, the widest offsets.
func DateTimeBoundary(s string, high bool) (string, bool) {
	_, _, _, n, ok := splitDate(s)
	if !ok {
		return "", false
	}
	date, ok := DateBoundary(s[:n], high)
	if !ok {
		return "", false
	}
	clock, zone := "", ""
	if n < len(s) {
		if s[n] != 'T' {
			return "", false
		}
		if clock, zone, ok = splitTime(s[n+1:], true); !ok {
			return "", false
		}
	}
	if zone == "" {
		zone = "+14:00"
		if high {
			zone = "-12:00"
		}
	}
	return date + "T" + fillClock(clock, high) + zone, true
}

// TimeBoundary returns the low (or high) boundary of a partial time as
// hh:mm:ss.fff.
func TimeBoundary(s string, high bool) (string, bool) {
	clock, _, ok := splitTime(s, false)
	if !ok {
		return "", false
	}
	return fillClock(clock, high), true
}
