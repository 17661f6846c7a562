package transform

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// colKind is the Arrow storage of a column's elements.
type colKind struct {
	base             baseKind
	precision, scale int32 // decimal
}

type baseKind int

const (
	kString baseKind = iota
	kBool
	kInt32
	kInt64
	kDecimal
	kDate
	kTimestamp
)

// Default precision and scale of decimal columns without an ansi/type tag.
const (
	DefaultDecimalPrecision = 18
	DefaultDecimalScale     = 6
)

// TimestampType is the Arrow type of dateTime and instant columns.
var TimestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

var ansiDecimalRE = regexp.MustCompile(`(?i)^\s*(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$`)

func kindOf(fhirType string, tags map[string]string) (colKind, error) {
	switch fhirType {
	case "", "string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid", "base64Binary", "time", "xhtml":
		return colKind{base: kString}, nil
	case "boolean":
		return colKind{base: kBool}, nil
	case "integer", "positiveInt", "unsignedInt":
		return colKind{base: kInt32}, nil
	case "integer64":
		return colKind{base: kInt64}, nil
	case "decimal":
		k := colKind{base: kDecimal, precision: DefaultDecimalPrecision, scale: DefaultDecimalScale}
		if t, ok := tags["ansi/type"]; ok {
			m := ansiDecimalRE.FindStringSubmatch(t)
			if m == nil {
				return k, fmt.Errorf("ansi/type %q: want DECIMAL(p,s)", t)
			}
			p, _ := strconv.Atoi(m[1])
			s, _ := strconv.Atoi(m[2])
			if p < 1 || p > 38 || s > p {
				return k, fmt.Errorf("ansi/type %q: precision must be 1..38 and scale at most precision", t)
			}
			k.precision, k.scale = int32(p), int32(s)
		}
		return k, nil
	case "date":
		return colKind{base: kDate}, nil
	case "dateTime", "instant":
		return colKind{base: kTimestamp}, nil
	}
	// Complex types have no column mapping; keep them as their text.
	return colKind{base: kString}, fmt.Errorf("unsupported column type %q", fhirType)
}

func (k colKind) arrowType() arrow.DataType {
	switch k.base {
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kInt32:
		return arrow.PrimitiveTypes.Int32
	case kInt64:
		return arrow.PrimitiveTypes.Int64
	case kDecimal:
		return &arrow.Decimal128Type{Precision: k.precision, Scale: k.scale}
	case kDate:
		return arrow.FixedWidthTypes.Date32
	case kTimestamp:
		return TimestampType
	}
	return arrow.BinaryTypes.String
}

func buildSchema(cols []Column, tags []map[string]string) (*arrow.Schema, []colKind, error) {
	fields := make([]arrow.Field, len(cols))
	kinds := make([]colKind, len(cols))
	for i, c := range cols {
		k, err := kindOf(c.Type, tags[i])
		if err != nil {
			return nil, nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		kinds[i] = k
		t := k.arrowType()
		if c.Collection {
			t = arrow.ListOf(t)
		}
		var md arrow.Metadata
		if c.Description != "" {
			md = arrow.NewMetadata([]string{"description"}, []string{c.Description})
		}
		fields[i] = arrow.Field{Name: c.Name, Type: t, Nullable: true, Metadata: md}
	}
	return arrow.NewSchema(fields, nil), kinds, nil
}

// errCell is wrapped by errors about a single cell value.
var errCell = errors.New("bad value")

// pow10 holds the powers of ten that fit an int64.
var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// fastDecimal converts plain decimal text ("-12.5") whose digits fit in 18
// and whose fraction needs no rounding; ok is false for anything else,
// which decimal128.FromString then handles.
func fastDecimal(s string, precision, scale int32) (decimal128.Num, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n int64
	digits, frac := 0, -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 18 {
				return decimal128.Num{}, false
			}
			n = n*10 + int64(c-'0')
			if n != 0 {
				digits++
			}
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && i > 0 && i < len(s)-1:
			frac = 0
		default:
			return decimal128.Num{}, false
		}
	}
	if len(s) == 0 || frac > int(scale) {
		return decimal128.Num{}, false
	}
	shift := int(scale) - max(frac, 0)
	if digits+shift > 18 {
		return decimal128.Num{}, false
	}
	n *= pow10[shift]
	if precision <= 18 && n >= pow10[precision] {
		return decimal128.Num{}, false // out of range: FromString reports it
	}
	if neg {
		n = -n
	}
	return decimal128.FromI64(n), true
}

// fastDate converts a full date "YYYY-MM-DD" (or the date part of a
// dateTime) whose fields are in range; ok is false for anything else.
func fastDate(s string) (arrow.Date32, bool) {
	if len(s) > 10 && s[10] == 'T' {
		s = s[:10]
	}
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := num4(s[:4])
	m, ok2 := num2(s[5:7])
	d, ok3 := num2(s[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return 0, false
	}
	return arrow.Date32(daysFromCivil(y, m, d)), true
}

// daysFromCivil returns the days from 1970-01-01 to the proleptic
// Gregorian date y-m-d (y >= 0), without the cost of time.Date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	doy := (153*((m+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// fastTimestamp converts a full dateTime with seconds and a zone,
// "YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm|-hh:mm)", whose fields are in
// range, to microseconds since the epoch in UTC (the fraction truncated,
// as ParseDateTime and UnixMicro do); ok is false for anything else.
func fastTimestamp(s string) (arrow.Timestamp, bool) {
	if len(s) < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	d, ok := fastDate(s[:10])
	if !ok {
		return 0, false
	}
	hh, ok1 := num2(s[11:13])
	mm, ok2 := num2(s[14:16])
	ss, ok3 := num2(s[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return 0, false
	}
	rest := s[19:]
	var nanos int64
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 || i > 10 {
			return 0, false
		}
		for j := 1; j < 10; j++ {
			nanos *= 10
			if j < i {
				nanos += int64(rest[j] - '0')
			}
		}
		rest = rest[i:]
	}
	var offset int64
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num2(rest[1:3])
		om, ok2 := num2(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := int64(d)*86400 + int64(hh*3600+mm*60+ss) - offset
	return arrow.Timestamp(secs*1_000_000 + nanos/1000), true
}

// num2 reads two decimal digits. A byte below '0' wraps around in the
// subtraction, so one comparison per digit checks both bounds.
func num2(s string) (int, bool) {
	a, b := s[0]-'0', s[1]-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

// num4 reads four decimal digits.
func num4(s string) (int, bool) {
	hi, ok1 := num2(s[:2])
	lo, ok2 := num2(s[2:4])
	return hi*100 + lo, ok1 && ok2
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

func typeName(v fhirpath.Value) string {
	if t := v.Type(); t != "" {
		return t
	}
	return "object"
}

func toInt(v fhirpath.Value) (int64, error) {
	switch v.Kind() {
	case fhirpath.KindInteger:
		return v.Int(), nil
	case fhirpath.KindString:
		if i, err := strconv.ParseInt(v.Str(), 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %s is not an integer", errCell, typeName(v))
}

// ParseDate parses a FHIR date, partial or full ("2001", "2001-03",
// "2001-03-04"), to its first day. The date part of a dateTime is accepted.
func ParseDate(s string) (time.Time, error) {
	if len(s) > 10 && s[10] == 'T' {
		s = s[:10]
	}
	low, ok := fhirpath.DateBoundary(s, false)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: not a date", errCell)
	}
	t, err := time.Parse(time.DateOnly, low)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: not a date", errCell)
	}
	return t, nil
}

// ParseDateTime parses a FHIR dateTime or instant to UTC. Offsets are
// applied; a partial value becomes its low boundary, and a value without a
// zone (a date, or a time without offset) is taken as UTC.
func ParseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	low, ok := fhirpath.DateTimeBoundary(s, false)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: not a dateTime", errCell)
	}
	if !hasZone(s) {
		low = strings.TrimSuffix(low, "+14:00") + "Z"
	}
	t, err := time.Parse(time.RFC3339Nano, low)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: not a dateTime", errCell)
	}
	return t.UTC(), nil
}

func hasZone(s string) bool {
	i := strings.IndexByte(s, 'T')
	return i >= 0 && strings.ContainsAny(s[i:], "Z+-")
}
