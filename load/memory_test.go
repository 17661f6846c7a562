package load

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var claimSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)

var claimTables = []Table{{Name: "claim", Resource: "Claim", Key: "id", Schema: claimSchema}}

// memRun commits one run of source carrying claims (id -> lastUpdated)
// and tombstones.
func memRun(t *testing.T, m *Memory, source string, deleted []string, versions map[string]string) Stats {
	t.Helper()
	return memRunWith(t, m, source, nil, deleted, versions)
}

// memRunWith is memRun with the run's Decided hook.
func memRunWith(t *testing.T, m *Memory, source string, decided func(map[string][]string), deleted []string, versions map[string]string) Stats {
	t.Helper()
	l, err := m.Begin(t.Context(), source, claimTables)
	if err != nil {
		t.Fatal(err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, ResourcesSchema)
	cb := array.NewRecordBuilder(memory.DefaultAllocator, claimSchema)
	for id, upd := range versions {
		ts, _ := time.Parse(time.RFC3339, upd)
		rb.Field(0).(*array.StringBuilder).Append("Claim")
		rb.Field(1).(*array.StringBuilder).Append(id)
		rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		rb.Field(3).AppendNull()
		rb.Field(4).(*array.StringBuilder).Append("f")
		rb.Field(5).(*array.Int64Builder).Append(1)
		rb.Field(6).AppendNull()
		cb.Field(0).(*array.StringBuilder).Append(id)
	}
	for table, b := range map[string]*array.RecordBuilder{Resources: rb, "claim": cb} {
		rec := b.NewRecordBatch()
		l.WriteBatch(t.Context(), table, rec)
		rec.Release()
		b.Release()
	}
	var ts []Tombstone
	for _, id := range deleted {
		ts = append(ts, Tombstone{ResourceType: "Claim", ID: id})
	}
	l.Delete(t.Context(), ts)
	st, err := l.Commit(t.Context(), Run{ID: source + time.Now().String(), Source: source, Decided: decided})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMemoryIdentity: the fake keeps the identity rules of the real
// warehouse, so that tests of the pipeline on it mean something.
func TestMemoryIdentity(t *testing.T) {
	m := NewMemory()
	defer m.Release()
	memRun(t, m, "a", nil, map[string]string{"1": "2026-01-02T00:00:00Z"})
	if st := memRun(t, m, "b", nil, map[string]string{"1": "2026-01-01T00:00:00Z"}); st.SkippedOlder != 0 {
		t.Errorf("another source's older Claim/1 was skipped")
	}
	if st := memRun(t, m, "a", nil, map[string]string{"1": "2026-01-01T00:00:00Z"}); st.SkippedOlder != 1 {
		t.Errorf("an older version within a source was loaded")
	}
	if st := memRun(t, m, "b", []string{"1", "1"}, nil); st.Deleted != 1 {
		t.Errorf("deleted %d, want 1", st.Deleted)
	}
	if got, _ := m.TableSources(t.Context(), "claim"); len(got) != 1 || got[0] != "a" {
		t.Errorf("sources after b's delete: %v", got)
	}
	rows, _ := m.TableRows(t.Context(), []string{"claim"})
	if rows["claim"] != 1 {
		t.Errorf("rows %v", rows)
	}
}

// TestMemoryDecided: the fake, like the real warehouse, hands its listed
// changed resources to the run's Decided hook, once, the same lists its
// Changes then hold. (It holds its lock meanwhile: the hook must not call
// back into it, which a lake's Prefetch does not.)
func TestMemoryDecided(t *testing.T) {
	m := NewMemory()
	defer m.Release()
	memRun(t, m, "a", nil, map[string]string{"1": "2026-01-01T00:00:00Z", "2": "2026-01-01T00:00:00Z"})
	var got []map[string][]string
	st := memRunWith(t, m, "a", func(keys map[string][]string) { got = append(got, keys) },
		[]string{"2"}, map[string]string{"1": "2026-01-02T00:00:00Z"})
	if len(got) != 1 {
		t.Fatalf("Decided called %d times, want once", len(got))
	}
	if ids := got[0]["Claim"]; len(ids) != 2 || ids[0] != "1" || ids[1] != "2" || &ids[0] != &st.Changes.Keys["Claim"][0] {
		t.Errorf("Decided got %v, Changes.Keys %v: want the same lists of Claim 1 and 2", got[0], st.Changes.Keys)
	}
}
