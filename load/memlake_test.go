package load

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMemoryLake: the fake lake copies what it is told changed, from the
// snapshot, keeps other sources' rows, and refuses another warehouse.
func TestMemoryLake(t *testing.T) {
	ctx := t.Context()
	m := NewMemory()
	defer m.Release()
	lk := NewMemoryLake()
	id := Identity{Path: m.Path(), ID: m.ID()}
	memRun(t, m, "a", nil, map[string]string{"1": "2026-01-01T00:00:00Z", "2": "2026-01-01T00:00:00Z"})
	memRun(t, m, "b", nil, map[string]string{"1": "2026-01-01T00:00:00Z"})
	if err := lk.Publish(ctx, m, id, claimTables, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int64{"claim": {"a": 2, "b": 1}}
	if diff := cmp.Diff(want, lk.Rows()); diff != "" {
		t.Errorf("after a whole publish (-want +got):\n%s", diff)
	}
	memRun(t, m, "b", []string{"1"}, nil)
	if err := lk.Publish(ctx, m, id, claimTables, &Changes{Source: "b", RunID: "r3", Tables: map[string][]string{"claim": nil}}); err != nil {
		t.Fatal(err)
	}
	want["claim"]["b"] = 0
	if diff := cmp.Diff(want, lk.Rows()); diff != "" {
		t.Errorf("after b's delete (-want +got):\n%s", diff)
	}
	wantPub := []MemoryPublish{{Tables: []string{"claim"}, Whole: true}, {RunID: "r3", Source: "b", Tables: []string{"claim"}}}
	if diff := cmp.Diff(wantPub, lk.Publishes()); diff != "" {
		t.Errorf("publishes (-want +got):\n%s", diff)
	}
	other := NewMemory()
	defer other.Release()
	if err := lk.Publish(ctx, other, Identity{Path: "other", ID: other.ID()}, claimTables, nil); !errors.Is(err, ErrLakeMismatch) {
		t.Errorf("publish from another warehouse: %v", err)
	}
}
