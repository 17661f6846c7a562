package sandbox

import (
	"encoding/json"
	"fmt"
	"time"
)

// obj is a JSON object that marshals its fields in order, so generated
// resources read like FHIR JSON (resourceType first) and are byte-stable.
type obj []field

type field struct {
	key string
	val any
}

// o builds an obj from key, value pairs; nil values (and empty objs and
// slices) are left out, so optional elements can be passed as nil.
func o(kv ...any) obj {
	if len(kv)%2 != 0 {
		panic("sandbox: o needs key, value pairs")
	}
	out := make(obj, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		v := kv[i+1]
		switch x := v.(type) {
		case nil:
			continue
		case obj:
			if len(x) == 0 {
				continue
			}
		case []obj:
			if len(x) == 0 {
				continue
			}
		case []any:
			if len(x) == 0 {
				continue
			}
		case string:
			if x == "" {
				continue
			}
		}
		out = append(out, field{kv[i].(string), v})
	}
	return out
}

// MarshalJSON implements json.Marshaler.
func (x obj) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range x {
		if i > 0 {
			b = append(b, ',')
		}
		kb, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(f.val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, vb...)
	}
	return append(b, '}'), nil
}

func coding(system, code, display string) obj {
	return o("system", system, "code", code, "display", display)
}

// cc is a CodeableConcept with one coding; text repeats the display.
func cc(system, code, display string) obj {
	return o("coding", []obj{coding(system, code, display)}, "text", display)
}

func ref(reference string) obj { return o("reference", reference) }

func refDisplay(reference, display string) obj {
	return o("reference", reference, "display", display)
}

// dec formats a decimal with a fixed number of places, kept exact on the wire.
func dec(v float64, places int) json.Number {
	return json.Number(fmt.Sprintf("%.*f", places, v))
}

// money is a USD amount from cents, with two decimals.
func money(cents int64) obj {
	return o("value", json.Number(fmt.Sprintf("%d.%02d", cents/100, cents%100)), "currency", "USD")
}

func date(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// instant formats t as a FHIR instant in UTC.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func meta(updated time.Time, profile string) obj {
	return o("lastUpdated", instant(updated), "profile", []any{profile})
}
