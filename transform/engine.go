package transform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/fhirlake/fhirlake/internal/fhirtypes"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// Reject is a line or value that could not be transformed. Never holds
// resource content.
type Reject struct {
	File         string
	Line         int64
	ResourceType string
	ResourceID   string
	Column       string // "" for a whole line or a whole resource
	Reason       string
}

// Sink receives the engine's output. It must be safe for concurrent use.
// WriteBatch must call rec.Retain() if it keeps rec after returning; the
// engine releases rec afterwards. An error from either method stops the
// Transform that called it.
type Sink interface {
	WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error
	Reject(ctx context.Context, r Reject) error
}

// ResourcesTable is the reserved table name of the resource index: one row
// per resource read, schema resource_type utf8, id utf8, meta_last_updated
// timestamp[us, tz=UTC] nullable, version_id utf8 nullable, file utf8,
// line int64, content_hash int64. content_hash identifies what the resource
// becomes in the tables: an xxHash64 of its line (spaces around it
// trimmed), seeded with the definitions of the views of its type and
// hashRevision, so the same line under the same views hashes the same in
// any run, and an edited view changes it. A loader may skip a version it
// already holds with the same hash.
const ResourcesTable = "_resources"

// ResourcesSchema is the schema of ResourcesTable.
var ResourcesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "resource_type", Type: arrow.BinaryTypes.String},
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: "meta_last_updated", Type: TimestampType, Nullable: true},
	{Name: "version_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "file", Type: arrow.BinaryTypes.String},
	{Name: "line", Type: arrow.PrimitiveTypes.Int64},
	{Name: "content_hash", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// hashRevision is mixed into every content hash. Bump it when a release
// changes what the transform makes of the same line and views, so that a
// reload of unchanged files rewrites their rows instead of skipping them
// as identical.
const hashRevision = 1

// DefaultBatchRows is the batch size used when Options.BatchRows is 0.
const DefaultBatchRows = 8192

// MaxLineBytes is the longest NDJSON line Transform accepts; a longer
// line is rejected and skipped.
const MaxLineBytes = 256 << 20

// Options configures an Engine.
type Options struct {
	// BatchRows is the number of rows per record batch and table; 0 means
	// DefaultBatchRows.
	BatchRows int
	// Workers is the number of goroutines transforming one input; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// Stats counts what one Transform call did.
type Stats struct {
	Lines     int64            // lines read, blank ones included
	Resources int64            // resources parsed and indexed
	Rejected  int64            // lines rejected (bad JSON, no resourceType, no id, too long)
	Rows      map[string]int64 // rows written per table, ResourcesTable included
	// CellRejects counts values nulled and reported (bad date, several
	// values for a non-collection column, where path not boolean).
	CellRejects int64
}

func (s *Stats) add(o *Stats) {
	s.Lines += o.Lines
	s.Resources += o.Resources
	s.Rejected += o.Rejected
	s.CellRejects += o.CellRejects
	for k, n := range o.Rows {
		s.Rows[k] += n
	}
}

// Engine evaluates a set of compiled views over NDJSON streams. It is
// immutable and safe for concurrent use.
type Engine struct {
	views      []*View
	byResource map[string][]int // resource type -> indices in views
	batchRows  int
	workers    int
	// general runs every path through the general FHIRPath evaluator,
	// without the compiled plans; tests compare the two.
	general bool
	// filter keeps the top-level members of a resource that the index or
	// a view can read; nil keeps all of them.
	filter *jsondoc.Filter
	// keys are the views' Keys bound to filter, by view.
	keys []*fhirpath.Keys
	// seeds are the content hashes' seeds by resource type (typeSeed).
	seeds map[string]uint64
	// blocks keeps the block buffers (chunkBytes) of the inputs read
	// before for the next: an incremental export is many small files,
	// and each took 2n+1 new blocks (5.6 MB allocated and cleared for a
	// small input with two workers, against 0.35 MB reusing them).
	blocks sync.Pool
	// idle keeps the workers of finished Transform calls of small inputs
	// (retire), whose builders, parser and evaluation buffers have grown:
	// a new worker grew them again for every input, a quarter of the CPU of
	// the transform of a 1% change set of the 10 GB export (60 small
	// files). BenchmarkTransformSmallFiles (40 inputs of 480 EOBs): 16 MB
	// allocated against 375 MB, 0.43-0.70 s against 0.91-1.15 s.
	idle sync.Pool
}

// typeSeed is the seed of the content hashes of resources of typ: the
// fingerprints of its views and hashRevision.
func (e *Engine) typeSeed(typ string) uint64 {
	if s, ok := e.seeds[typ]; ok {
		return s
	}
	return hashRevision
}

// ErrDuplicateView is returned by NewEngine when two views share a name.
var ErrDuplicateView = errors.New("duplicate view name")

// NewEngine returns an engine for views. View names must be unique and
// must not be ResourcesTable.
func NewEngine(views []*View, opts Options) (*Engine, error) {
	e := &Engine{views: views, byResource: map[string][]int{}, batchRows: opts.BatchRows, workers: opts.Workers}
	if e.batchRows <= 0 {
		e.batchRows = DefaultBatchRows
	}
	if e.workers <= 0 {
		e.workers = runtime.GOMAXPROCS(0)
	}
	seen := map[string]bool{ResourcesTable: true}
	for i, v := range views {
		if seen[v.Name()] {
			return nil, fmt.Errorf("new engine: %w: %q", ErrDuplicateView, v.Name())
		}
		seen[v.Name()] = true
		e.byResource[v.Resource()] = append(e.byResource[v.Resource()], i)
	}
	e.filter = memberFilter(views)
	e.seeds = map[string]uint64{}
	for typ, idx := range e.byResource {
		d := xxhash.NewWithSeed(hashRevision)
		for _, i := range idx {
			d.Write(binary.LittleEndian.AppendUint64(nil, views[i].fingerprint))
		}
		e.seeds[typ] = d.Sum64()
	}
	e.keys = make([]*fhirpath.Keys, len(views))
	for i, v := range views {
		e.keys[i] = v.keys.Bind(e.filter)
	}
	return e, nil
}

// memberFilter returns the filter that keeps the members of a resource
// that the index or one of views can read, nil when a view can read the
// whole resource. Whatever a line holds beyond that (a narrative, lists
// no view unnests) is checked to be JSON but not built into a tree.
func memberFilter(views []*View) *jsondoc.Filter {
	names := []string{"resourceType", "id", "meta"} // read by index
	for _, v := range views {
		if v.whole {
			return nil
		}
		names = append(names, v.members...)
	}
	return jsondoc.NewFilter(names...)
}

// Views returns the engine's views.
func (e *Engine) Views() []*View { return e.views }

// table accumulates the rows of one output table.
type table struct {
	name   string
	schema *arrow.Schema
	cols   []colBuilder
	strs   []*stringCol // the string columns of cols, checked for size
	rows   int
	total  int64 // rows added, for Stats.Rows
}

func newTable(name string, schema *arrow.Schema, kinds []colKind) *table {
	t := &table{name: name, schema: schema, cols: make([]colBuilder, schema.NumFields())}
	for i, f := range schema.Fields() {
		var k colKind
		if kinds != nil {
			k = kinds[i]
		} else {
			k = kindOfArrow(f.Type)
		}
		t.cols[i] = newColBuilder(f.Type, k)
		if sc, ok := t.cols[i].(*stringCol); ok {
			t.strs = append(t.strs, sc)
		}
	}
	return t
}

// worker is the state of one goroutine of a Transform call: its own
// parser, builders and evaluation state.
type worker struct {
	e       *Engine
	ctx     context.Context
	file    string
	sink    Sink
	stats   Stats
	tables  []*table // parallel to e.views
	res     *table
	resCols resourceCols
	digest  *xxhash.Digest // of content hashes
	states  []*evalState
	parser  jsondoc.Parser
	line    int64
	rtype   string
	rid     string
	// wantType is the resourceType the input's manifest declares, "" when
	// it declares none.
	wantType string
	// lastViews are e.byResource[lastType], the views of the last
	// resource type seen.
	lastType  string
	lastViews []int
	// badLastUpdated is the current resource's meta.lastUpdated when it
	// is no dateTime: rejected once for the resource, not again by every
	// view column that holds it.
	badLastUpdated string
}

func (e *Engine) newWorker(ctx context.Context, name string, sink Sink) *worker {
	if w, ok := e.idle.Get().(*worker); ok {
		w.ctx, w.file, w.sink = ctx, name, sink
		return w
	}
	w := &worker{e: e, ctx: ctx, file: name, sink: sink, stats: Stats{Rows: map[string]int64{}}}
	w.res = newTable(ResourcesTable, ResourcesSchema, nil)
	w.digest = xxhash.New()
	w.resCols = resourceCols{
		typ:         w.res.cols[0].(*stringCol),
		id:          w.res.cols[1].(*stringCol),
		lastUpdated: w.res.cols[2].(*fixedCol[arrow.Timestamp]),
		versionID:   w.res.cols[3].(*stringCol),
		file:        w.res.cols[4].(*stringCol),
		line:        w.res.cols[5].(*fixedCol[int64]),
		hash:        w.res.cols[6].(*fixedCol[int64]),
	}
	w.tables = make([]*table, len(e.views))
	w.states = make([]*evalState, len(e.views))
	for i, v := range e.views {
		w.tables[i] = newTable(v.Name(), v.Schema(), v.kinds)
		w.states[i] = newEvalState(v, func(col int, err error) error {
			return w.cellReject(v.columns[col].Name, err)
		})
		w.states[i].ctx.General = e.general
		w.states[i].ctx.Keys, w.states[i].ctx.Filter = e.keys[i], e.filter
	}
	return w
}

// keepLines is the most lines a worker may have read in a Transform call
// to be kept for the next (idle). A small input's worker is what the next
// small input needs; one of a big input is left to the garbage collector:
// keeping those held 32 MB more of Go heap in a full load of the 1 GB
// export (150 MB more RSS, with GOGC at 400) and made it no faster.
const keepLines = 4096

// retire empties w, keeping the capacity of its buffers, for a later
// newWorker, when its input was small (keepLines).
func (e *Engine) retire(w *worker) {
	if w.stats.Lines > keepLines {
		return
	}
	for _, t := range append(w.tables, w.res) {
		for _, c := range t.cols {
			c.truncate(0)
		}
		t.rows, t.total = 0, 0
	}
	w.ctx, w.sink = nil, nil
	w.stats = Stats{Rows: map[string]int64{}}
	w.line, w.rtype, w.rid, w.wantType, w.badLastUpdated = 0, "", "", "", ""
	w.lastType, w.lastViews = "", nil
	e.idle.Put(w)
}

// chunkBytes is the size of the blocks of whole lines handed to workers.
const chunkBytes = 1 << 20

// chunk is a block of whole lines (each ending in '\n' but maybe the last
// of the input), or a single line too long to keep.
type chunk struct {
	buf     *[]byte // from the chunk pool; data is a prefix of *buf
	data    []byte
	first   int64 // 1-based number of the first line
	tooLong bool
	// damaged, when set, is the reason the input ends early: the chunk
	// holds no line, and first is the number the next line would have.
	damaged string
}

// Transform streams NDJSON from r (name is used in rejects: a file name),
// one resource per line, blank lines skipped, lines up to MaxLineBytes. A
// gzip stream is decompressed and a leading UTF-8 byte-order mark skipped
// (see OpenInput).
// For each resource it evaluates every view whose Resource() matches
// resourceType, appends rows, and sends a batch per table whenever
// BatchRows rows accumulate and at the end, plus ResourcesTable batches. A
// malformed line (bad JSON, no resourceType, no id) becomes a Reject with
// the file and 1-based line number and the run goes on.
//
// The input is cut into blocks of whole lines (about 1 MiB) transformed by
// Options.Workers goroutines, each with its own builders, so batches of a
// table and rejects reach the sink from several goroutines and in no
// particular order; a batch may hold fewer than BatchRows rows (each
// worker flushes what it holds at the end). All rows of one resource are
// produced by one worker, in view order, before Transform returns; they
// may be split across consecutive batches of a table. With Workers 1 the
// output order is the input order. Memory is bounded by Workers x (block
// + BatchRows rows) and by the longest line, never by input size. Safe to
// call concurrently on different inputs.
func (e *Engine) Transform(ctx context.Context, name string, r io.Reader, sink Sink) (Stats, error) {
	return e.TransformAs(ctx, name, "", r, sink)
}

// TransformAs is Transform of input that its manifest declares to hold
// resources of type wantType ("" for any type): a line of another
// resourceType is a reject, never a row.
//
// Compressed input is read like plain input, and its damage is data's, not
// the run's: a gzip stream that is truncated, corrupt or not gzip after its
// magic bytes keeps the lines decoded before the damage and ends with a
// line reject saying what was lost, and so does an empty file whose name
// ends in .gz. An error reading r itself is returned.
func (e *Engine) TransformAs(ctx context.Context, name, wantType string, r io.Reader, sink Sink) (Stats, error) {
	br := bufio.NewReaderSize(r, inputBuffer)
	if _, err := br.Peek(1); err == io.EOF && strings.HasSuffix(name, ".gz") {
		return damaged(ctx, name, 1, "empty file: a gzip stream holds at least a header", sink)
	}
	r, closer, err := OpenInput(br)
	var dmg *DamagedError
	if errors.As(err, &dmg) {
		return damaged(ctx, name, 1, dmg.Error(), sink)
	}
	if err != nil {
		return Stats{Rows: map[string]int64{}}, fmt.Errorf("read %s: %w", name, err)
	}
	defer closer.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := e.workers
	chunks := make(chan chunk, n)
	free := make(chan *[]byte, 2*n+1) // recycled block buffers; bounds memory
	for range cap(free) {
		b, ok := e.blocks.Get().(*[]byte)
		if !ok {
			nb := make([]byte, 0, chunkBytes)
			b = &nb
		}
		free <- b
	}
	// The blocks back with the workers done are the next input's.
	defer func() {
		for {
			select {
			case b := <-free:
				e.blocks.Put(b)
			default:
				return
			}
		}
	}()
	var (
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := e.newWorker(ctx, name, sink)
		w.wantType = wantType
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				err := w.chunk(c)
				if c.buf != nil {
					recycle(c.buf, free)
				}
				if err != nil {
					fail(err)
					for c := range chunks { // drain so the reader can finish
						if c.buf != nil {
							recycle(c.buf, free)
						}
					}
					return
				}
			}
			if err := w.flushAll(); err != nil {
				fail(err)
			}
		}()
	}
	rerr := e.split(ctx, name, r, chunks, free)
	close(chunks)
	wg.Wait()
	stats := Stats{Rows: map[string]int64{}}
	for _, w := range workers {
		for _, t := range append(w.tables, w.res) {
			if t.total > 0 {
				w.stats.Rows[t.name] += t.total
			}
		}
		stats.add(&w.stats)
		e.retire(w)
	}
	if rerr != nil && (firstErr == nil || !errors.Is(rerr, context.Canceled)) {
		return stats, rerr
	}
	if firstErr != nil {
		return stats, firstErr
	}
	// The reader stops without error when ctx is cancelled by a worker
	// failure; a cancellation from the caller is reported here.
	return stats, context.Cause(ctx)
}

// damaged is the outcome of an input that is damaged from the start: one
// line reject at line, no rows.
func damaged(ctx context.Context, name string, line int64, reason string, sink Sink) (Stats, error) {
	st := Stats{Rows: map[string]int64{}, Rejected: 1}
	return st, sink.Reject(ctx, Reject{File: name, Line: line, Reason: reason})
}

// recycle returns a block buffer to free, replacing one grown for a long
// line so that the pool keeps no more than chunkBytes a buffer.
func recycle(bp *[]byte, free chan<- *[]byte) {
	if cap(*bp) > 2*chunkBytes {
		b := make([]byte, 0, chunkBytes)
		bp = &b
	}
	*bp = (*bp)[:0]
	free <- bp
}

// split reads r and sends blocks of whole lines to chunks, taking buffers
// from free. A block grows to hold a line longer than itself; a line
// longer than MaxLineBytes is skipped and sent as a tooLong chunk.
func (e *Engine) split(ctx context.Context, name string, r io.Reader, chunks chan<- chunk, free chan *[]byte) error {
	line := int64(1) // number of the next line
	var carry []byte // the start of a line not yet complete
	eof := false
	send := func(c chunk) error {
		select {
		case chunks <- c:
			return nil
		case <-ctx.Done():
			if c.buf != nil {
				free <- c.buf
			}
			return ctx.Err()
		}
	}
	var damage *DamagedError // where a compressed input ended early
	read := func(buf []byte) ([]byte, error) {
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		switch {
		case err == io.EOF:
			eof = true
		case errors.As(err, &damage):
			eof = true // the lines so far are good; a cut line is rejected as such
		case err != nil:
			return buf, fmt.Errorf("read %s: %w", name, err)
		}
		return buf, nil
	}
	for !eof || len(carry) > 0 {
		var bp *[]byte
		select {
		case bp = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		buf := append((*bp)[:0], carry...)
		carry = nil
		scanned := 0 // no newline in buf[:scanned]
		for !eof {
			if len(buf) == cap(buf) {
				if bytes.IndexByte(buf[scanned:], '\n') >= 0 {
					break
				}
				scanned = len(buf)
				if len(buf) > MaxLineBytes {
					break
				}
				buf = slices.Grow(buf, len(buf)) // a long line: double the block
			}
			var err error
			if buf, err = read(buf); err != nil {
				*bp = buf[:0]
				free <- bp
				return err
			}
		}
		if len(buf) > MaxLineBytes && bytes.IndexByte(buf[:MaxLineBytes+1], '\n') < 0 {
			// Skip the too long line up to its newline.
			rest := buf[:0]
			for {
				if i := bytes.IndexByte(rest, '\n'); i >= 0 {
					carry = append([]byte(nil), rest[i+1:]...)
					break
				}
				if eof {
					break
				}
				var err error
				if rest, err = read(rest[:0]); err != nil {
					*bp = rest[:0]
					free <- bp
					return err
				}
			}
			*bp = nil // drop the grown buffer; a fresh one replaces it
			nb := make([]byte, 0, chunkBytes)
			free <- &nb
			if err := send(chunk{first: line, tooLong: true}); err != nil {
				return err
			}
			line++
			continue
		}
		data := buf
		if !eof {
			i := bytes.LastIndexByte(buf, '\n')
			data, carry = buf[:i+1], append([]byte(nil), buf[i+1:]...)
		}
		if len(data) == 0 {
			*bp = data
			free <- bp
			continue
		}
		lines := int64(bytes.Count(data, []byte{'\n'}))
		if data[len(data)-1] != '\n' {
			lines++
		}
		*bp = data
		if err := send(chunk{buf: bp, data: data, first: line}); err != nil {
			return err
		}
		line += lines
	}
	if damage != nil {
		return send(chunk{first: line, damaged: damage.Error() + ": the lines after this point are lost"})
	}
	return nil
}

// chunk transforms the lines of c.
func (w *worker) chunk(c chunk) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.line = c.first
	if c.damaged != "" {
		w.rtype, w.rid = "", ""
		return w.lineReject(c.damaged)
	}
	if c.tooLong {
		w.stats.Lines++
		w.rtype, w.rid = "", ""
		return w.lineReject(fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
	}
	data := c.data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		w.stats.Lines++
		if err := w.resource(line); err != nil {
			return err
		}
		w.line++
	}
	return nil
}

func (w *worker) lineReject(reason string) error {
	w.stats.Rejected++
	return w.sink.Reject(w.ctx, Reject{
		File: w.file, Line: w.line, ResourceType: strings.Clone(w.rtype), ResourceID: strings.Clone(w.rid), Reason: reason,
	})
}

func (w *worker) cellReject(column string, err error) error {
	w.stats.CellRejects++
	return w.sink.Reject(w.ctx, Reject{
		File: w.file, Line: w.line, ResourceType: strings.Clone(w.rtype), ResourceID: strings.Clone(w.rid), Column: column,
		Reason: err.Error(),
	})
}

// resource handles one line.
func (w *worker) resource(line []byte) error {
	w.rtype, w.rid = "", ""
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	v, err := w.parser.ParseFiltered(line, w.e.filter)
	if err != nil {
		return w.lineReject(err.Error()) // an offset and the rule broken, no content
	}
	if v.Type() != jsondoc.TypeObject {
		return w.lineReject("not a JSON object")
	}
	// rtype and rid alias the line: rejects clone them.
	w.rtype, _ = v.GetString("resourceType")
	if w.rtype == "" {
		return w.lineReject("missing resourceType")
	}
	w.rid, _ = v.GetString("id")
	if !fhirtypes.Is(w.rtype) {
		w.rtype = "" // not a type name: keep it out of the reject
		return w.lineReject("resourceType is not a FHIR resource type")
	}
	if w.wantType != "" && w.rtype != w.wantType {
		return w.lineReject(fmt.Sprintf("resourceType %s in a file the manifest lists as %s", w.rtype, w.wantType))
	}
	if w.rid == "" {
		return w.lineReject("missing id")
	}
	w.stats.Resources++
	if err := w.index(v, line); err != nil {
		return err
	}
	res := fhirpath.Object(v)
	if w.rtype != w.lastType { // files hold one type: look it up once
		w.lastType, w.lastViews = strings.Clone(w.rtype), w.e.byResource[w.rtype]
	}
	for _, i := range w.lastViews {
		if w.e.views[i].flat != nil {
			if err := w.flatRow(i, res); err != nil {
				return err
			}
			continue
		}
		rows, err := w.states[i].rows(res)
		if err != nil {
			if cerr := w.cellReject("", err); cerr != nil {
				return cerr
			}
			continue
		}
		if err := w.appendRows(w.tables[i], rows); err != nil {
			return err
		}
	}
	return nil
}

// flatRow evaluates view i, whose rows are flat (see View.flat), over res
// and appends its one row to the view's table as it goes: what rows and
// appendRows do, without collecting the row first. When a path fails, the
// cells already appended are taken back and the resource yields no row,
// as with rows.
func (w *worker) flatRow(i int, res fhirpath.Value) error {
	st, t := w.states[i], w.tables[i]
	ok, err := st.begin(res)
	if err != nil {
		return w.cellReject("", err)
	}
	if !ok {
		return nil
	}
	cols := w.e.views[i].flat
	for k, cp := range cols {
		v, n, err := cp.expr.EvalOne(&st.ctx, st.focus)
		if err != nil {
			for _, done := range cols[:k] {
				t.cols[done.idx].truncate(t.rows)
			}
			return w.cellReject("", err)
		}
		col := t.cols[cp.idx]
		switch {
		case n == 0:
			col.addNull()
		case n > 1: // as run checks a non-collection column
			col.addNull()
			if err := st.cellError(cp.idx, ErrNotCollection); err != nil {
				return err
			}
		default:
			if err := w.appendValue(t, cp.idx, v); err != nil {
				return err
			}
		}
	}
	return w.added(t, 1)
}

// resourceCols are the columns of ResourcesTable.
type resourceCols struct {
	typ, id, versionID, file *stringCol
	lastUpdated              *fixedCol[arrow.Timestamp]
	line, hash               *fixedCol[int64]
}

// index appends the ResourcesTable row of the current resource.
func (w *worker) index(v *jsondoc.Value, line []byte) error {
	c := &w.resCols
	c.typ.addString(w.rtype)
	c.id.addString(w.rid)
	meta := v.Get("meta")
	w.badLastUpdated = ""
	if s, ok := meta.GetString("lastUpdated"); ok {
		if ts, err := parseTimestamp(s); err == nil {
			c.lastUpdated.addRaw(ts)
		} else {
			c.lastUpdated.addNull()
			w.badLastUpdated = strings.Clone(s)
			if err := w.cellReject("meta_last_updated", err); err != nil {
				return err
			}
		}
	} else {
		c.lastUpdated.addNull()
	}
	if s, ok := meta.GetString("versionId"); ok {
		c.versionID.addString(s)
	} else {
		c.versionID.addNull()
	}
	c.file.addString(w.file)
	c.line.addRaw(w.line)
	w.digest.ResetWithSeed(w.e.typeSeed(w.rtype))
	w.digest.Write(line)
	c.hash.addRaw(int64(w.digest.Sum64()))
	return w.added(w.res, 1)
}

func (w *worker) appendRows(t *table, rows []row) error {
	for _, r := range rows {
		for ci, cell := range r {
			if err := w.appendCell(t, ci, cell); err != nil {
				return err
			}
		}
		if err := w.added(t, 1); err != nil {
			return err
		}
	}
	return nil
}

func (w *worker) appendCell(t *table, ci int, cell fhirpath.Collection) error {
	col := t.cols[ci]
	if lc, ok := col.(*listCol); ok {
		if cell == nil {
			lc.addNull()
			return nil
		}
		for i := range cell {
			if err := addValue(lc.elem, &cell[i]); err != nil {
				lc.elem.addNull()
				if rerr := w.cellReject(t.schema.Field(ci).Name, err); rerr != nil {
					return rerr
				}
			}
		}
		lc.end(len(cell))
		return nil
	}
	if len(cell) == 0 {
		col.addNull()
		return nil
	}
	return w.appendValue(t, ci, &cell[0])
}

// appendValue appends v to column ci of t, or a null and a cell reject
// when v does not fit the column.
func (w *worker) appendValue(t *table, ci int, v *fhirpath.Value) error {
	col := t.cols[ci]
	if err := addValue(col, v); err != nil {
		col.addNull()
		if w.badLastUpdated != "" && v.Str() == w.badLastUpdated {
			return nil // the resource's meta.lastUpdated: rejected once, by index
		}
		return w.cellReject(t.schema.Field(ci).Name, err)
	}
	return nil
}

// added counts n new rows in t and flushes it when full.
func (w *worker) added(t *table, n int) error {
	t.rows += n
	t.total += int64(n)
	if t.rows >= w.e.batchRows {
		return w.flush(t)
	}
	for _, sc := range t.strs {
		if sc.full() {
			return w.flush(t)
		}
	}
	return nil
}

func (w *worker) flush(t *table) error {
	if t.rows == 0 {
		return nil
	}
	arrs := make([]arrow.Array, len(t.cols))
	for i, c := range t.cols {
		arrs[i] = c.build(batchAllocator)
	}
	rec := array.NewRecordBatch(t.schema, arrs, int64(t.rows))
	for _, a := range arrs {
		a.Release()
	}
	t.rows = 0
	defer rec.Release()
	if err := w.sink.WriteBatch(w.ctx, t.name, rec); err != nil {
		return fmt.Errorf("write %s batch: %w", t.name, err)
	}
	return nil
}

func (w *worker) flushAll() error {
	for _, t := range w.tables {
		if err := w.flush(t); err != nil {
			return err
		}
	}
	return w.flush(w.res)
}
