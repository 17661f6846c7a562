package load

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Memory is an in-memory Warehouse for tests of what drives one (the
// pipeline, lake targets): it keeps the committed rows of every table as
// Arrow rows, with the same identity rules as the DuckDB warehouse —
// rows are keyed by source, resource type and id; the newest version of
// a resource (meta.lastUpdated, then a numeric versionId) replaces all
// its rows in every table, an older one is skipped; deletes and the
// watermark apply per source. It answers no SQL (ErrNoSQL), keeps no
// person crosswalk, views or rejects beyond their count, and is safe for
// concurrent use.
type Memory struct {
	mu         sync.Mutex // guards everything below
	id         string
	tables     map[string]*memTable
	versions   map[memKey]memVersion // committed resources
	watermarks map[string]time.Time  // source|scope|type
	runs       []Run
	jobs       map[string]bool
}

var (
	_ Warehouse = (*Memory)(nil)
	_ Loader    = (*memLoader)(nil)
)

type memKey struct{ source, typ, id string }

type memVersion struct {
	updated time.Time // zero when absent
	version string
	hash    *int64 // content hash, nil when absent
}

// same reports whether v is old again: equal content hashes.
func (v memVersion) same(old memVersion) bool {
	return v.hash != nil && old.hash != nil && *v.hash == *old.hash
}

// newer reports whether v beats old: a later instant, or at the same
// instant a higher numeric version; an exact tie goes to v (the later run).
func (v memVersion) newer(old memVersion) bool {
	if !v.updated.Equal(old.updated) {
		return v.updated.After(old.updated)
	}
	a, aerr := strconv.ParseInt(v.version, 10, 64)
	b, berr := strconv.ParseInt(old.version, 10, 64)
	if aerr == nil && berr == nil {
		return a >= b
	}
	return true
}

// memTable holds a table's committed rows, one single-row record per row,
// by the resource they came from.
type memTable struct {
	def  Table
	rows map[memKey][]arrow.RecordBatch
}

// memories numbers the in-memory warehouses, so each has its own ID.
var memories atomic.Int64

// NewMemory returns an empty in-memory warehouse.
func NewMemory() *Memory {
	return &Memory{id: fmt.Sprintf("memory-%d", memories.Add(1)), tables: map[string]*memTable{}, versions: map[memKey]memVersion{},
		watermarks: map[string]time.Time{}, jobs: map[string]bool{}}
}

// Path is "memory".
func (m *Memory) Path() string { return "memory" }

// ID is "memory-N", N counting the in-memory warehouses made.
func (m *Memory) ID() string { return m.id }

// Version is always current.
func (m *Memory) Version() int { return SchemaVersion }

// Upgrade does nothing: a Memory is always current.
func (m *Memory) Upgrade(context.Context, []Table) error { return nil }

// Close does nothing: a Memory lives on between opens (the pipeline opens
// and closes its warehouse several times a run); Release frees it.
func (m *Memory) Close() error { return nil }

// Release frees the kept rows; the Memory is empty afterwards.
func (m *Memory) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tables {
		for _, rs := range t.rows {
			for _, r := range rs {
				r.Release()
			}
		}
	}
	m.tables = map[string]*memTable{}
}

// Watermark is the oldest watermark of types for source and scope.
func (m *Memory) Watermark(_ context.Context, source, scope string, types []string) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	for i, t := range types {
		w, ok := m.watermarks[source+"|"+scope+"|"+t]
		if !ok {
			return time.Time{}, false, nil
		}
		if i == 0 || w.Before(oldest) {
			oldest = w
		}
	}
	return oldest, len(types) > 0, nil
}

// Compact has nothing to reclaim: replaced rows are gone from memory.
func (m *Memory) Compact(context.Context, bool) (Compaction, error) { return Compaction{}, nil }

// CommittedJobs says which jobs a committed run recorded.
func (m *Memory) CommittedJobs(_ context.Context, jobs []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, j := range jobs {
		if m.jobs[j] {
			out[j] = true
		}
	}
	return out, nil
}

// ApplySQL does nothing: a Memory has no views.
func (m *Memory) ApplySQL(context.Context, fs.FS) []error { return nil }

// Query is not supported.
func (m *Memory) Query(context.Context, string, ...any) (*sql.Rows, error) { return nil, ErrNoSQL }

// TableRows counts the committed rows of each table.
func (m *Memory) TableRows(_ context.Context, tables []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	for _, name := range tables {
		var n int64
		if t, ok := m.tables[name]; ok {
			for _, rs := range t.rows {
				n += int64(len(rs))
			}
		}
		out[name] = n
	}
	return out, nil
}

// Runs returns the committed runs, in commit order.
func (m *Memory) Runs() []Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs)
}

// Begin starts staging a run.
func (m *Memory) Begin(_ context.Context, source string, tables []Table) (Loader, error) {
	if err := CheckSource(source); err != nil {
		return nil, err
	}
	l := &memLoader{m: m, source: source, tables: map[string]Table{}, staged: map[string][]arrow.RecordBatch{}}
	for _, t := range tables {
		l.tables[t.Name] = t
	}
	return l, nil
}

// memLoader is one run staged in memory.
type memLoader struct {
	m      *Memory
	source string
	tables map[string]Table

	mu      sync.Mutex // guards the fields below
	staged  map[string][]arrow.RecordBatch
	deleted []Tombstone
	rejects int64
	done    bool
}

func (l *memLoader) WriteBatch(_ context.Context, table string, rec arrow.RecordBatch) error {
	if _, ok := l.tables[table]; !ok && table != Resources {
		return fmt.Errorf("stage batch: unknown table %s", table)
	}
	rec.Retain()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.staged[table] = append(l.staged[table], rec)
	return nil
}

func (l *memLoader) Reject(context.Context, Reject) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejects++
	return nil
}

func (l *memLoader) Delete(_ context.Context, ts []Tombstone) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deleted = append(l.deleted, ts...)
	return nil
}

func (l *memLoader) MemberMatches(context.Context, []MemberMatch) error { return nil }

// NewValues returns the staged values of column, and also, that the
// committed table does not hold for the source.
func (l *memLoader) NewValues(_ context.Context, table, column string, also []string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	have := map[string]bool{}
	if t, ok := l.m.tables[table]; ok {
		for k, rs := range t.rows {
			if k.source == l.source {
				for _, r := range rs {
					forColumn(r, column, func(v string) { have[v] = true })
				}
			}
		}
	}
	set := map[string]bool{}
	for _, v := range also {
		if !have[v] {
			set[v] = true
		}
	}
	for _, r := range l.staged[table] {
		forColumn(r, column, func(v string) {
			if !have[v] {
				set[v] = true
			}
		})
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out, nil
}

// forColumn calls fn with each non-null string value of column in rec.
func forColumn(rec arrow.RecordBatch, column string, fn func(string)) {
	idx := rec.Schema().FieldIndices(column)
	if len(idx) == 0 {
		return
	}
	col, ok := rec.Column(idx[0]).(*array.String)
	if !ok {
		return
	}
	for i := 0; i < col.Len(); i++ {
		if col.IsValid(i) {
			fn(col.Value(i))
		}
	}
}

// Duplicates are not looked for: the newest staged version wins at
// commit, row by row.
func (l *memLoader) Duplicates(context.Context) ([]Located, error) { return nil, nil }

func (l *memLoader) Unstage(context.Context, []Located) error { return nil }

func (l *memLoader) Rejects() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rejects
}

// stagedVersions reads the Resources stream: the newest staged version of
// each resource.
func (l *memLoader) stagedVersions() map[memKey]memVersion {
	out := map[memKey]memVersion{}
	for _, rec := range l.staged[Resources] {
		typ := rec.Column(0).(*array.String)
		id := rec.Column(1).(*array.String)
		upd := rec.Column(2).(*array.Timestamp)
		ver := rec.Column(3).(*array.String)
		for i := 0; i < int(rec.NumRows()); i++ {
			v := memVersion{}
			if upd.IsValid(i) {
				v.updated = upd.Value(i).ToTime(arrow.Microsecond)
			}
			if ver.IsValid(i) {
				v.version = ver.Value(i)
			}
			if hashes := rec.Schema().FieldIndices("content_hash"); len(hashes) > 0 && rec.Column(hashes[0]).IsValid(i) {
				h := rec.Column(hashes[0]).(*array.Int64).Value(i)
				v.hash = &h
			}
			k := memKey{l.source, typ.Value(i), id.Value(i)}
			if old, ok := out[k]; !ok || v.newer(old) {
				out[k] = v
			}
		}
	}
	return out
}

// Commit applies the run's deletes and newest versions.
func (l *memLoader) Commit(_ context.Context, run Run) (Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return Stats{}, fmt.Errorf("commit run %s: run already finished", run.ID)
	}
	l.done = true
	defer l.release()
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Rows: map[string]int64{}, Rejects: l.rejects, Changes: &Changes{Source: l.source, RunID: run.ID, Tables: map[string][]string{}}}
	gone := map[memKey]bool{}
	for _, d := range l.deleted {
		k := memKey{l.source, d.ResourceType, d.ID}
		if !gone[k] {
			gone[k] = true
			st.Deleted++
		}
	}
	accepted := map[memKey]bool{}
	for k, v := range l.stagedVersions() {
		st.Resources++
		if old, ok := m.versions[k]; ok && !v.newer(old) && !gone[k] {
			st.SkippedOlder++
			continue
		}
		if old, ok := m.versions[k]; ok && v.same(old) && !gone[k] {
			st.Unchanged++
			continue
		}
		accepted[k] = true
		m.versions[k] = v
		st.Changes.Index = true
	}
	if len(gone) > 0 {
		st.Changes.Index = true
	}
	for k := range gone {
		if !accepted[k] {
			delete(m.versions, k)
		}
	}
	if n := len(accepted) + len(gone); keysListed(int64(n)) {
		st.Changes.Keys = map[string][]string{}
		for k := range accepted {
			st.Changes.Keys[k.typ] = append(st.Changes.Keys[k.typ], k.id)
		}
		for k := range gone {
			if !accepted[k] {
				st.Changes.Keys[k.typ] = append(st.Changes.Keys[k.typ], k.id)
			}
		}
		for _, ids := range st.Changes.Keys {
			slices.Sort(ids)
		}
		if run.Decided != nil {
			run.Decided(st.Changes.Keys)
		}
	}
	for name, def := range l.tables {
		t := m.tables[name]
		if t == nil {
			t = &memTable{def: def, rows: map[memKey][]arrow.RecordBatch{}}
			m.tables[name] = t
		}
		changed := false
		for k, rs := range t.rows {
			if k.typ == def.Resource && (accepted[k] || gone[k]) {
				for _, r := range rs {
					r.Release()
				}
				delete(t.rows, k)
				changed = true
			}
		}
		for _, rec := range l.staged[name] {
			keys := rec.Column(rec.Schema().FieldIndices(def.Key)[0]).(*array.String)
			for i := 0; i < int(rec.NumRows()); i++ {
				k := memKey{l.source, def.Resource, keys.Value(i)}
				if accepted[k] {
					t.rows[k] = append(t.rows[k], rec.NewSlice(int64(i), int64(i+1)))
					st.Rows[name]++
					changed = true
				}
			}
		}
		if changed {
			st.Changes.Tables[name] = nil // the whole source's rows: Memory keeps no partitions
		}
	}
	for _, part := range run.Exports() {
		if part.TransactionTime.IsZero() {
			continue
		}
		for _, typ := range part.WatermarkTypes {
			key := run.Source + "|" + part.Scope + "|" + typ
			if part.TransactionTime.After(m.watermarks[key]) {
				m.watermarks[key] = part.TransactionTime
			}
		}
	}
	for _, j := range run.Jobs() {
		m.jobs[j] = true
	}
	m.runs = append(m.runs, run)
	return st, nil
}

// CommitRejected records the job as done and nothing else.
func (l *memLoader) CommitRejected(_ context.Context, run Run) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	l.release()
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	for _, j := range run.Jobs() {
		l.m.jobs[j] = true
	}
	return nil
}

func (l *memLoader) Rollback(context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.done = true
		l.release()
	}
}

// release drops the staged batches; callers hold l.mu.
func (l *memLoader) release() {
	for _, rs := range l.staged {
		for _, r := range rs {
			r.Release()
		}
	}
	l.staged = nil
}

// TableSources lists the sources with rows in table.
func (m *Memory) TableSources(_ context.Context, table string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := map[string]bool{}
	if t, ok := m.tables[table]; ok {
		for k := range t.rows {
			set[k.source] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// Records streams the rows of t of source, in key order (without the
// data_source column: Memory keeps the view's columns). Partitions are not
// kept: vals must be nil.
func (m *Memory) Records(_ context.Context, t Table, source string, vals []string) (RecordReader, error) {
	if vals != nil {
		return nil, fmt.Errorf("memory warehouse: table %s: no partitions", t.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mt, ok := m.tables[t.Name]
	if !ok {
		return array.NewRecordReader(t.Schema, nil)
	}
	var keys []memKey
	for k := range mt.rows {
		if k.source == source {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	var recs []arrow.RecordBatch
	for _, k := range keys {
		recs = append(recs, mt.rows[k]...)
	}
	return array.NewRecordReader(mt.def.Schema, recs)
}

// RecordsOf streams the rows of t of source of the resources ids, in key
// order.
func (m *Memory) RecordsOf(_ context.Context, t Table, source string, ids []string, _ int64) (RecordReader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mt, ok := m.tables[t.Name]
	if !ok {
		return array.NewRecordReader(t.Schema, nil)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	var recs []arrow.RecordBatch
	for _, id := range slices.Compact(sorted) {
		recs = append(recs, mt.rows[memKey{source, t.Resource, id}]...)
	}
	return array.NewRecordReader(mt.def.Schema, recs)
}

// SourceRecords is not supported: Memory keeps no bookkeeping tables.
func (m *Memory) SourceRecords(context.Context, string, string, []string) (RecordReader, error) {
	return nil, fmt.Errorf("memory warehouse: no bookkeeping tables")
}

// RunIndex is not supported: Memory keeps no bookkeeping tables.
func (m *Memory) RunIndex(context.Context, string, string, int64) (RecordReader, error) {
	return nil, fmt.Errorf("memory warehouse: no bookkeeping tables")
}

// WriteParquet is not supported: Memory writes no files.
func (m *Memory) WriteParquet(context.Context, Table, string, []string, string) (int64, error) {
	return 0, fmt.Errorf("memory warehouse: no Parquet writer")
}

// WriteTableParquet is not supported.
func (m *Memory) WriteTableParquet(context.Context, string, string) (int64, error) {
	return 0, fmt.Errorf("memory warehouse: no Parquet writer")
}

// TableRecords is not supported: Memory keeps no bookkeeping tables.
func (m *Memory) TableRecords(context.Context, string) (RecordReader, error) {
	return nil, fmt.Errorf("memory warehouse: no bookkeeping tables")
}

// TableDefs is empty: Memory has no SQL definitions.
func (m *Memory) TableDefs(context.Context) (map[string]string, error) {
	return map[string]string{}, nil
}

// Views is empty.
func (m *Memory) Views(context.Context) ([]string, error) { return nil, nil }

// Sources lists the sources of the committed runs.
func (m *Memory) Sources(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.runs {
		out = append(out, r.Source)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SourceRunIDs lists the ids of the committed runs of source.
func (m *Memory) SourceRunIDs(_ context.Context, source string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.runs {
		if r.Source == source {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// RunIDs lists the ids of the committed runs.
func (m *Memory) RunIDs(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.runs))
	for i, r := range m.runs {
		out[i] = r.ID
	}
	sort.Strings(out)
	return out, nil
}
