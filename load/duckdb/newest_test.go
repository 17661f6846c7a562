//go:build duckdb_arrow

package duckdb

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

func TestNewestVersionWins(t *testing.T) {
	tests := []struct {
		name       string
		first      version
		second     version
		wantSecond bool // the second run's rows replace the first's
	}{
		{"newer lastUpdated", version{"a", "2025-01-01T00:00:00Z", "1"}, version{"a", "2025-02-01T00:00:00Z", "2"}, true},
		{"older lastUpdated arriving later", version{"a", "2025-02-01T00:00:00Z", "2"}, version{"a", "2025-01-01T00:00:00Z", "1"}, false},
		{"same instant in another zone, higher version", version{"a", "2025-02-01T00:00:00Z", "9"}, version{"a", "2025-02-01T01:00:00+01:00", "10"}, true},
		{"same instant, lower version", version{"a", "2025-02-01T00:00:00Z", "10"}, version{"a", "2025-02-01T00:00:00Z", "9"}, false},
		{"exact tie: the later run wins", version{"a", "2025-02-01T00:00:00Z", "3"}, version{"a", "2025-02-01T00:00:00Z", "3"}, true},
		{"no lastUpdated never beats a dated version", version{"a", "2025-02-01T00:00:00Z", ""}, version{"a", "", ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			loadRun(t, w, "r1", batch{load.Resources, versions(tt.first)}, batch{"child", children("a", 1)})
			st := loadRun(t, w, "r2", batch{load.Resources, versions(tt.second)}, batch{"child", children("a", 2, "a", 3)})
			want := []string{"a:1"}
			var skipped int64 = 1
			if tt.wantSecond {
				want, skipped = []string{"a:2", "a:3"}, 0
			}
			if diff := cmp.Diff(want, query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if st.SkippedOlder != skipped {
				t.Errorf("skipped older = %d, want %d", st.SkippedOlder, skipped)
			}
		})
	}
}

// TestSkippedVersionBesideNewOnes: in a run that carries an older
// version of one resource beside new resources of the same type, the new
// ones' rows go in and the older version's stay out (its rows are staged
// with the others').
func TestSkippedVersionBesideNewOnes(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	loadRun(t, w, "r1", batch{load.Resources, versions(version{"a", "2025-02-01T00:00:00Z", "2"})}, batch{"child", children("a", 1)})
	st := loadRun(t, w, "r2", batch{load.Resources, versions(version{"a", "2025-01-01T00:00:00Z", "1"}, version{"b", "2025-01-01T00:00:00Z", "1"})},
		batch{"child", children("a", 2, "b", 3)})
	if diff := cmp.Diff([]string{"a:1", "b:3"}, query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if st.SkippedOlder != 1 {
		t.Errorf("skipped older = %d, want 1", st.SkippedOlder)
	}
}

// TestNewestVersionWithinARun: a run that carries two versions of a
// resource (resolved as the pipeline does) keeps the newer one, wherever
// it came in the files, and indexes it once; a resource it carries once
// is indexed as it came.
func TestNewestVersionWithinARun(t *testing.T) {
	for _, newerFirst := range []bool{false, true} {
		w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		older, newer := version{"a", "2025-01-01T00:00:00Z", "1"}, version{"a", "2025-02-01T00:00:00Z", "2"}
		vs := []version{older, newer, {"b", "2025-01-01T00:00:00Z", "7"}}
		if newerFirst {
			vs[0], vs[1] = newer, older
		}
		l, err := w.Begin(ctx, "test", tables)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []batch{{load.Resources, versions(vs...)}, {"child", children("a", 1, "a", 2, "b", 7)}} {
			if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
				t.Fatal(err)
			}
			b.rec.Release()
		}
		dups, err := l.Duplicates(ctx)
		if err != nil || len(dups) != 1 || dups[0].ID != "a" {
			t.Fatalf("duplicates %v, %v", dups, err)
		}
		if err := l.Unstage(ctx, dups); err != nil {
			t.Fatal(err)
		}
		rec := children("a", 2)
		if err := l.WriteBatch(ctx, "child", rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		st, err := l.Commit(ctx, load.Run{ID: "r1", Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		got := query(t, w, "SELECT id || ' ' || version_id FROM fhirlake_resources ORDER BY 1")
		if diff := cmp.Diff([]string{"a 2", "b 7"}, got); diff != "" {
			t.Errorf("newer first %v: fhirlake_resources (-want +got):\n%s", newerFirst, diff)
		}
		if st.SkippedOlder != 0 || st.Resources != 3 {
			t.Errorf("newer first %v: %d resources, %d skipped older; want 3 and 0", newerFirst, st.Resources, st.SkippedOlder)
		}
		w.Close()
	}
}

func TestDuplicateIdenticalCopiesCollapse(t *testing.T) {
	ctx := t.Context()
	w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The same resource exported twice (as Group exports do with shared
	// resources): committed as staged, its rows would be there twice, so
	// the commit refuses.
	stage := func() load.Loader {
		l, err := w.Begin(ctx, "test", tables)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []batch{{load.Resources, resources("a", "a")}, {"parent", parents("a")}, {"parent", parents("a")}, {"child", children("a", 1, "a", 1)}} {
			if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
				t.Fatal(err)
			}
			b.rec.Release()
		}
		return l
	}
	l := stage()
	if _, err := l.Commit(ctx, load.Run{ID: "r1", Source: "test"}); !errors.Is(err, ErrUnresolvedDuplicates) {
		t.Fatalf("commit of unresolved copies: %v", err)
	}
	if n := query(t, w, "SELECT count(*) FROM fhirlake_runs"); n[0] != "0" {
		t.Errorf("the refused run was recorded")
	}
	// A copy staged after Duplicates found none is refused too: the
	// commit does not take the earlier answer for it.
	l, err = w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range []batch{{load.Resources, resources("a")}, {"parent", parents("a")}, {load.Resources, resources("b", "a")}, {"parent", parents("b", "a")}} {
		if i == 2 {
			if dups, err := l.Duplicates(ctx); err != nil || len(dups) != 0 {
				t.Fatalf("duplicates of one copy: %v, %v", dups, err)
			}
		}
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	if _, err := l.Commit(ctx, load.Run{ID: "r1", Source: "test"}); !errors.Is(err, ErrUnresolvedDuplicates) {
		t.Fatalf("commit of a copy staged after Duplicates: %v", err)
	}
	// Resolved as the pipeline does (unstage every copy, stage the
	// winner's rows again), its rows are there once.
	l = stage()
	dups, err := l.Duplicates(ctx)
	if err != nil || len(dups) != 1 || dups[0].ID != "a" {
		t.Fatalf("duplicates %v, %v", dups, err)
	}
	if err := l.Unstage(ctx, dups); err != nil {
		t.Fatal(err)
	}
	for _, b := range []batch{{"parent", parents("a")}, {"child", children("a", 1)}} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: "r2", Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1 1"}, query(t, w, "SELECT (SELECT count(*) FROM parent) || ' ' || (SELECT count(*) FROM child)")); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if st.Rows["parent"] != 1 || st.Rows["child"] != 1 {
		t.Errorf("staged rows %v: the dropped copies still count", st.Rows)
	}
}

func TestWatermarkOnlyMovesForward(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := t.Context()
	t1 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	commit := func(id string, tt time.Time, types ...string) {
		t.Helper()
		l, err := w.Begin(ctx, "payer", tables)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Commit(ctx, load.Run{ID: id, Source: "payer", Scope: "group/g1", Started: tt, TransactionTime: tt, WatermarkTypes: types}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := w.Watermark(ctx, "payer", "group/g1", []string{"Patient"}); ok {
		t.Fatal("watermark before any run")
	}
	commit("r1", t1, "Patient", "Claim")
	commit("r2", t1.Add(-time.Hour), "Patient") // an older export committed later
	commit("r3", t1.Add(24*time.Hour), "Claim")
	commit("r4", t1.Add(48*time.Hour)) // errors: no type advances
	tests := []struct {
		types []string
		want  time.Time
		ok    bool
	}{
		{[]string{"Patient"}, t1, true},
		{[]string{"Claim"}, t1.Add(24 * time.Hour), true},
		{[]string{"Patient", "Claim"}, t1, true},
		{[]string{"Patient", "Coverage"}, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok, err := w.Watermark(ctx, "payer", "group/g1", tt.types)
		if err != nil || ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("Watermark(%v) = %v, %v, %v; want %v, %v", tt.types, got, ok, err, tt.want, tt.ok)
		}
	}
	if _, ok, _ := w.Watermark(ctx, "payer", "group/other", []string{"Patient"}); ok {
		t.Error("watermark leaked across scopes")
	}
}

func TestLockErrorNamesTheHolder(t *testing.T) {
	lockErr := errors.New(`IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in /usr/bin/duckdb (PID 4242)`)
	if !isLockError(lockErr) {
		t.Fatal("DuckDB's lock error was not recognised")
	}
	if err := inUse("w.duckdb", lockErr); !errors.Is(err, load.ErrInUse) || !strings.Contains(err.Error(), "PID 4242") {
		t.Errorf("inUse = %v, want load.ErrInUse naming the holder", err)
	}
	if isLockError(errors.New("IO Error: disk full")) {
		t.Error("a disk error was taken for a lock")
	}
}

// TestNewestWinsWithoutLastUpdated: servers that send no meta.lastUpdated
// (Epic) have their versions dated by the transaction time of the export
// that delivered them, on both sides of the comparison: a replay of an
// older export loses to what a newer one delivered, a newer export wins,
// and a dated version loses to an undated one exported after it.
func TestNewestWinsWithoutLastUpdated(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		first      version
		firstTT    time.Time
		second     version
		secondTT   time.Time
		wantSecond bool
	}{
		{"a later export wins", version{"a", "", ""}, t0, version{"a", "", ""}, t0.Add(24 * time.Hour), true},
		{"an older export replayed later loses", version{"a", "", ""}, t0, version{"a", "", ""}, t0.Add(-24 * time.Hour), false},
		{"undated, exported after a dated version", version{"a", "2026-02-01T00:00:00Z", ""}, t0, version{"a", "", ""}, t0.Add(time.Hour), true},
		{"undated, exported before the dated version's time", version{"a", "2026-02-01T00:00:00Z", ""}, t0, version{"a", "", ""}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"dated, newer than the undated version's export", version{"a", "", ""}, t0, version{"a", "2026-03-02T00:00:00Z", ""}, t0.Add(48 * time.Hour), true},
		{"dated, older than the undated version's export", version{"a", "", ""}, t0, version{"a", "2026-02-27T00:00:00Z", ""}, t0.Add(48 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			commit := func(id string, v version, at time.Time, kids ...any) load.Stats {
				t.Helper()
				l, err := w.Begin(ctx, "test", tables)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range []batch{{load.Resources, versions(v)}, {"child", children(kids...)}} {
					if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
						t.Fatal(err)
					}
					b.rec.Release()
				}
				st, err := l.Commit(ctx, load.Run{ID: id, Source: "test", Scope: "all", Started: at, TransactionTime: at})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			commit("r1", tt.first, tt.firstTT, "a", 1)
			st := commit("r2", tt.second, tt.secondTT, "a", 2)
			want, skipped := "a:1", int64(1)
			if tt.wantSecond {
				want, skipped = "a:2", 0
			}
			if got := query(t, w, "SELECT string_agg(parent_id || ':' || seq, ',') FROM child"); got[0] != want || st.SkippedOlder != skipped {
				t.Errorf("rows %v, skipped %d; want %s, %d", got, st.SkippedOlder, want, skipped)
			}
		})
	}
}
