package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// resourceTypes is every type the sandbox serves, in export order.
var resourceTypes = []string{
	"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Condition",
	"Observation", "Practitioner", "Organization", "Group",
}

// record is one stored resource. A record is never modified after it is
// stored: updates store a new record, so export snapshots can share it.
// Its JSON is in the store's spill file, not in memory.
type record struct {
	typ, id string
	sp      *spill
	off     int64
	n       int
	updated time.Time // meta.lastUpdated
	patient string    // id of the Patient whose compartment holds it, or ""
}

// raw is the resource's JSON.
func (r *record) raw() []byte { return r.sp.get(r.off, r.n) }

// spill keeps the resources' JSON in a temporary file, removed as soon as
// it is made (it goes when the process does), so that the sandbox's
// memory holds an index of its data, not the data: 10,000 members are
// a few gigabytes of JSON. The page cache keeps a hot file fast.
type spill struct {
	f   *os.File
	mu  sync.Mutex // guards end
	end int64
}

func newSpill() (*spill, error) {
	f, err := os.CreateTemp("", "fhirlake-sandbox-*")
	if err != nil {
		return nil, fmt.Errorf("sandbox store: %w", err)
	}
	os.Remove(f.Name())
	return &spill{f: f}, nil
}

// put appends b and returns where it is.
func (s *spill) put(b []byte) (int64, error) {
	s.mu.Lock()
	off := s.end
	s.end += int64(len(b))
	s.mu.Unlock()
	if _, err := s.f.WriteAt(b, off); err != nil {
		return 0, fmt.Errorf("sandbox store: %w", err)
	}
	return off, nil
}

// get reads back n bytes at off. The file is the process's own: a read
// that fails is a broken machine, and the sandbox stops.
func (s *spill) get(off int64, n int) []byte {
	b := make([]byte, n)
	if _, err := s.f.ReadAt(b, off); err != nil {
		panic(fmt.Sprintf("sandbox store: read back a resource: %v", err))
	}
	return b
}

// store holds the current data. Callers synchronise access.
type store struct {
	byType     map[string][]*record
	index      map[string]int // type/id -> position in byType[type]
	tombstones []tombstone    // deletions, in clock order
	sp         *spill
}

// tombstone records a deleted resource.
type tombstone struct {
	typ, id string
	patient string    // compartment of the deleted resource, as record.patient
	at      time.Time // sandbox clock at deletion
}

func newStore() (*store, error) {
	sp, err := newSpill()
	if err != nil {
		return nil, err
	}
	return &store{byType: make(map[string][]*record), index: make(map[string]int), sp: sp}, nil
}

// newRecord stores raw in the spill file and returns its record.
func (st *store) newRecord(typ, id string, raw []byte, updated time.Time) (*record, error) {
	off, err := st.sp.put(raw)
	if err != nil {
		return nil, err
	}
	return &record{typ: typ, id: id, sp: st.sp, off: off, n: len(raw), updated: updated}, nil
}

// put stores a generated resource.
func (st *store) put(res obj) error {
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return st.putJSON(raw, time.Time{})
}

// putJSON parses and stores raw; now fills a missing meta.lastUpdated.
func (st *store) putJSON(raw []byte, now time.Time) error {
	var r struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Subject     *jsonRef `json:"subject"`
		Patient     *jsonRef `json:"patient"`
		Beneficiary *jsonRef `json:"beneficiary"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if !slices.Contains(resourceTypes, r.ResourceType) {
		return fmt.Errorf("put: unsupported resourceType %q", r.ResourceType)
	}
	if r.ID == "" {
		return fmt.Errorf("put %s: missing id", r.ResourceType)
	}
	var updated time.Time
	if r.Meta.LastUpdated == "" {
		if now.IsZero() {
			return fmt.Errorf("put %s/%s: missing meta.lastUpdated", r.ResourceType, r.ID)
		}
		var err error
		if raw, err = setLastUpdated(raw, now); err != nil {
			return fmt.Errorf("put %s/%s: %w", r.ResourceType, r.ID, err)
		}
		updated = now
	} else {
		var err error
		if updated, err = time.Parse(time.RFC3339Nano, r.Meta.LastUpdated); err != nil {
			return fmt.Errorf("put %s/%s: meta.lastUpdated: %w", r.ResourceType, r.ID, err)
		}
	}
	rec, err := st.newRecord(r.ResourceType, r.ID, compact(raw), updated)
	if err != nil {
		return err
	}
	switch {
	case r.ResourceType == "Patient":
		rec.patient = r.ID
	case r.Subject != nil:
		rec.patient = r.Subject.patientID()
	case r.Patient != nil:
		rec.patient = r.Patient.patientID()
	case r.Beneficiary != nil:
		rec.patient = r.Beneficiary.patientID()
	}
	st.replace(rec)
	return nil
}

func (st *store) replace(rec *record) {
	key := rec.typ + "/" + rec.id
	if i, ok := st.index[key]; ok {
		st.byType[rec.typ][i] = rec
		return
	}
	st.index[key] = len(st.byType[rec.typ])
	st.byType[rec.typ] = append(st.byType[rec.typ], rec)
	// A resource stored again is no longer deleted.
	st.tombstones = slices.DeleteFunc(st.tombstones, func(t tombstone) bool { return t.typ == rec.typ && t.id == rec.id })
}

// remove deletes a resource and records a tombstone at now.
func (st *store) remove(typ, id string, now time.Time) error {
	key := typ + "/" + id
	i, ok := st.index[key]
	if !ok {
		return fmt.Errorf("delete %s/%s: %w", typ, id, errNotFound)
	}
	rec := st.byType[typ][i]
	// A new slice: nothing else holds it, but keep records immutable anyway.
	st.byType[typ] = slices.Concat(st.byType[typ][:i], st.byType[typ][i+1:])
	delete(st.index, key)
	for k := i; k < len(st.byType[typ]); k++ {
		st.index[typ+"/"+st.byType[typ][k].id] = k
	}
	st.tombstones = append(st.tombstones, tombstone{typ: typ, id: id, patient: rec.patient, at: now})
	return nil
}

// update applies mutate to a decoded copy of a resource (numbers as
// json.Number), then sets meta.lastUpdated to now and bumps meta.versionId
// (a resource without one counts as version 1). Key order of the original
// JSON is kept; new keys follow in sorted order.
func (st *store) update(typ, id string, now time.Time, mutate func(map[string]any)) error {
	rec := st.get(typ, id)
	if rec == nil {
		return fmt.Errorf("update %s/%s: %w", typ, id, errNotFound)
	}
	orig := rec.raw()
	dec := json.NewDecoder(bytes.NewReader(orig))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("update %s/%s: %w", typ, id, err)
	}
	mutate(m)
	if m["resourceType"] != typ || m["id"] != id {
		return fmt.Errorf("update %s/%s: mutate must not change resourceType or id", typ, id)
	}
	mt, _ := m["meta"].(map[string]any)
	if mt == nil {
		mt = make(map[string]any)
	}
	version := 1
	if v, ok := mt["versionId"].(string); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("update %s/%s: meta.versionId %q is not a number", typ, id, v)
		}
		version = n
	}
	mt["versionId"] = strconv.Itoa(version + 1)
	mt["lastUpdated"] = instant(now)
	m["meta"] = mt
	raw, err := marshalLike(m, orig)
	if err != nil {
		return fmt.Errorf("update %s/%s: %w", typ, id, err)
	}
	return st.putJSON(raw, now)
}

// marshalLike marshals v, writing object keys in the order orig (the JSON v
// was decoded from) has them; keys orig lacks follow, sorted.
func marshalLike(v any, orig json.RawMessage) ([]byte, error) {
	switch x := v.(type) {
	case map[string]any:
		var was orderedObject
		_ = json.Unmarshal(orig, &was) // orig may be absent or not an object
		var out orderedObject
		add := func(k string, o json.RawMessage) error {
			b, err := marshalLike(x[k], o)
			if err != nil {
				return err
			}
			out.keys, out.vals = append(out.keys, k), append(out.vals, b)
			return nil
		}
		for i, k := range was.keys {
			if _, ok := x[k]; ok {
				if err := add(k, was.vals[i]); err != nil {
					return nil, err
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if !slices.Contains(was.keys, k) {
				if err := add(k, nil); err != nil {
					return nil, err
				}
			}
		}
		return json.Marshal(out)
	case []any:
		var was []json.RawMessage
		_ = json.Unmarshal(orig, &was)
		b := []byte{'['}
		for i, e := range x {
			var o json.RawMessage
			if i < len(was) {
				o = was[i]
			}
			eb, err := marshalLike(e, o)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, eb...)
		}
		return append(b, ']'), nil
	default:
		return json.Marshal(v)
	}
}

func (st *store) get(typ, id string) *record {
	i, ok := st.index[typ+"/"+id]
	if !ok {
		return nil
	}
	return st.byType[typ][i]
}

func (st *store) touch(typ, id string, now time.Time) error {
	rec := st.get(typ, id)
	if rec == nil {
		return fmt.Errorf("touch %s/%s: %w", typ, id, errNotFound)
	}
	raw, err := setLastUpdated(rec.raw(), now)
	if err != nil {
		return fmt.Errorf("touch %s/%s: %w", typ, id, err)
	}
	next, err := st.newRecord(rec.typ, rec.id, raw, now)
	if err != nil {
		return fmt.Errorf("touch %s/%s: %w", typ, id, err)
	}
	next.patient = rec.patient
	st.replace(next)
	return nil
}

// groupMembers returns the Patient ids in the Group with id, or false.
func (st *store) groupMembers(id string) (map[string]bool, bool) {
	rec := st.get("Group", id)
	if rec == nil {
		return nil, false
	}
	var g struct {
		Member []struct {
			Entity jsonRef `json:"entity"`
		} `json:"member"`
	}
	if err := json.Unmarshal(rec.raw(), &g); err != nil {
		return nil, false
	}
	members := make(map[string]bool, len(g.Member))
	for _, m := range g.Member {
		if p := m.Entity.patientID(); p != "" {
			members[p] = true
		}
	}
	return members, true
}

type jsonRef struct {
	Reference string `json:"reference"`
}

func (r *jsonRef) patientID() string {
	id, ok := strings.CutPrefix(r.Reference, "Patient/")
	if !ok {
		return ""
	}
	return id
}

// setLastUpdated returns raw with meta.lastUpdated set to t, keeping the
// order of the other fields.
func setLastUpdated(raw []byte, t time.Time) ([]byte, error) {
	var top orderedObject
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var meta orderedObject
	if m, ok := top.get("meta"); ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
	}
	ts, _ := json.Marshal(instant(t))
	meta.set("lastUpdated", ts)
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if _, ok := top.get("meta"); !ok {
		// Put meta after id, where FHIR JSON usually has it.
		top.insertAfter("id", "meta", mb)
	} else {
		top.set("meta", mb)
	}
	return json.Marshal(top)
}

// orderedObject is a JSON object that keeps its key order.
type orderedObject struct {
	keys []string
	vals []json.RawMessage
}

func (o *orderedObject) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		o.keys = append(o.keys, tok.(string))
		o.vals = append(o.vals, v)
	}
	return nil
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b []byte
	b = append(b, '{')
	for i, k := range o.keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, o.vals[i]...)
	}
	return append(b, '}'), nil
}

func (o *orderedObject) get(k string) (json.RawMessage, bool) {
	i := slices.Index(o.keys, k)
	if i < 0 {
		return nil, false
	}
	return o.vals[i], true
}

func (o *orderedObject) set(k string, v json.RawMessage) {
	if i := slices.Index(o.keys, k); i >= 0 {
		o.vals[i] = v
		return
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o *orderedObject) insertAfter(after, k string, v json.RawMessage) {
	i := slices.Index(o.keys, after) + 1 // 0 when after is absent
	o.keys = slices.Insert(o.keys, i, k)
	o.vals = slices.Insert(o.vals, i, v)
}

// compact returns raw on one line, as NDJSON needs.
func compact(raw []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}
