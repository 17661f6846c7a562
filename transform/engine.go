package transform

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/valyala/fastjson"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
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
// line int64.
const ResourcesTable = "_resources"

// ResourcesSchema is the schema of ResourcesTable.
var ResourcesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "resource_type", Type: arrow.BinaryTypes.String},
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: "meta_last_updated", Type: TimestampType, Nullable: true},
	{Name: "version_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "file", Type: arrow.BinaryTypes.String},
	{Name: "line", Type: arrow.PrimitiveTypes.Int64},
}, nil)

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

// Engine evaluates a set of compiled views over NDJSON streams. It is
// immutable and safe for concurrent use.
type Engine struct {
	views      []*View
	byResource map[string][]int // resource type -> indices in views
	batchRows  int
}

// ErrDuplicateView is returned by NewEngine when two views share a name.
var ErrDuplicateView = errors.New("duplicate view name")

// NewEngine returns an engine for views. View names must be unique and
// must not be ResourcesTable.
func NewEngine(views []*View, opts Options) (*Engine, error) {
	e := &Engine{views: views, byResource: map[string][]int{}, batchRows: opts.BatchRows}
	if e.batchRows <= 0 {
		e.batchRows = DefaultBatchRows
	}
	seen := map[string]bool{ResourcesTable: true}
	for i, v := range views {
		if seen[v.Name()] {
			return nil, fmt.Errorf("new engine: %w: %q", ErrDuplicateView, v.Name())
		}
		seen[v.Name()] = true
		e.byResource[v.Resource()] = append(e.byResource[v.Resource()], i)
	}
	return e, nil
}

// Views returns the engine's views.
func (e *Engine) Views() []*View { return e.views }

// table accumulates the rows of one output table.
type table struct {
	name   string
	schema *arrow.Schema
	b      *array.RecordBuilder
	rows   int
	kinds  []colKind // nil for ResourcesTable
}

// run is the state of one Transform call.
type run struct {
	e      *Engine
	ctx    context.Context
	file   string
	sink   Sink
	stats  Stats
	tables []*table // parallel to e.views
	res    *table
	states []*evalState
	line   int64
	rtype  string
	rid    string
}

// Transform streams NDJSON from r (name is used in rejects: a file name),
// one resource per line, blank lines skipped, lines up to MaxLineBytes.
// For each resource it evaluates every view whose Resource() matches
// resourceType, appends rows, and sends a batch per table whenever
// BatchRows rows accumulate and at the end, plus ResourcesTable batches. A
// malformed line (bad JSON, no resourceType, no id) becomes a Reject with
// the file and 1-based line number and the run goes on. Memory is bounded
// by BatchRows, never by input size. Safe to call concurrently on
// different inputs.
func (e *Engine) Transform(ctx context.Context, name string, r io.Reader, sink Sink) (Stats, error) {
	mem := memory.DefaultAllocator
	rn := &run{e: e, ctx: ctx, file: name, sink: sink, stats: Stats{Rows: map[string]int64{}}}
	rn.res = &table{name: ResourcesTable, schema: ResourcesSchema, b: array.NewRecordBuilder(mem, ResourcesSchema)}
	defer rn.res.b.Release()
	rn.tables = make([]*table, len(e.views))
	rn.states = make([]*evalState, len(e.views))
	for i, v := range e.views {
		t := &table{name: v.Name(), schema: v.Schema(), b: array.NewRecordBuilder(mem, v.Schema()), kinds: v.kinds}
		defer t.b.Release()
		rn.tables[i] = t
		rn.states[i] = newEvalState(v, func(col int, err error) error {
			return rn.cellReject(v.columns[col].Name, err)
		})
	}
	err := rn.read(r)
	if err == nil {
		err = rn.flushAll()
	}
	return rn.stats, err
}

func (rn *run) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var p fastjson.Parser
	var long []byte // a line longer than the reader's buffer, gathered
	tooLong := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(long)+len(line) > MaxLineBytes {
				tooLong, long = true, nil
			}
			if !tooLong {
				long = append(long, line...)
			}
			continue
		}
		if long != nil || tooLong {
			line = append(long, line...)
			long = nil
		}
		if len(line) == 0 && !tooLong {
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", rn.file, err)
		}
		rn.line++
		rn.stats.Lines++
		if rn.line%1024 == 0 {
			if cerr := rn.ctx.Err(); cerr != nil {
				return cerr
			}
		}
		var herr error
		if tooLong {
			rn.rtype, rn.rid = "", ""
			herr = rn.lineReject(fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
			tooLong = false
		} else {
			herr = rn.resource(&p, line)
		}
		if herr != nil {
			return herr
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", rn.file, err)
		}
	}
}

func (rn *run) lineReject(reason string) error {
	rn.stats.Rejected++
	return rn.sink.Reject(rn.ctx, Reject{File: rn.file, Line: rn.line, ResourceType: rn.rtype, ResourceID: rn.rid, Reason: reason})
}

func (rn *run) cellReject(column string, err error) error {
	rn.stats.CellRejects++
	return rn.sink.Reject(rn.ctx, Reject{
		File: rn.file, Line: rn.line, ResourceType: rn.rtype, ResourceID: rn.rid, Column: column, Reason: err.Error(),
	})
}

// resource handles one line.
func (rn *run) resource(p *fastjson.Parser, line []byte) error {
	rn.rtype, rn.rid = "", ""
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	v, err := p.ParseBytes(line)
	if err != nil {
		return rn.lineReject("invalid JSON") // the parser's message quotes content
	}
	if v.Type() != fastjson.TypeObject {
		return rn.lineReject("not a JSON object")
	}
	rt := v.GetStringBytes("resourceType")
	if len(rt) == 0 {
		return rn.lineReject("missing resourceType")
	}
	rn.rtype = string(rt)
	id := v.GetStringBytes("id")
	if len(id) == 0 {
		return rn.lineReject("missing id")
	}
	rn.rid = string(id)
	rn.stats.Resources++
	if err := rn.index(v); err != nil {
		return err
	}
	res := fhirpath.Object(v)
	for _, i := range rn.e.byResource[rn.rtype] {
		rows, err := rn.states[i].rows(res)
		if err != nil {
			if cerr := rn.cellReject("", err); cerr != nil {
				return cerr
			}
			continue
		}
		if err := rn.appendRows(rn.tables[i], rows); err != nil {
			return err
		}
	}
	return nil
}

// index appends the ResourcesTable row of the current resource.
func (rn *run) index(v *fastjson.Value) error {
	b := rn.res.b
	b.Field(0).(*array.StringBuilder).Append(rn.rtype)
	b.Field(1).(*array.StringBuilder).Append(rn.rid)
	lu := b.Field(2).(*array.TimestampBuilder)
	if s := v.GetStringBytes("meta", "lastUpdated"); s != nil {
		if t, err := ParseDateTime(string(s)); err == nil {
			lu.Append(arrow.Timestamp(t.UnixMicro()))
		} else {
			lu.AppendNull()
			if err := rn.cellReject("meta_last_updated", err); err != nil {
				return err
			}
		}
	} else {
		lu.AppendNull()
	}
	vid := b.Field(3).(*array.StringBuilder)
	if s := v.GetStringBytes("meta", "versionId"); s != nil {
		vid.Append(string(s))
	} else {
		vid.AppendNull()
	}
	b.Field(4).(*array.StringBuilder).Append(rn.file)
	b.Field(5).(*array.Int64Builder).Append(rn.line)
	return rn.added(rn.res, 1)
}

func (rn *run) appendRows(t *table, rows []row) error {
	for _, r := range rows {
		for ci, cell := range r {
			if err := rn.appendCell(t, ci, cell); err != nil {
				return err
			}
		}
		if err := rn.added(t, 1); err != nil {
			return err
		}
	}
	return nil
}

func (rn *run) appendCell(t *table, ci int, cell fhirpath.Collection) error {
	fb := t.b.Field(ci)
	k := t.kinds[ci]
	if lb, ok := fb.(*array.ListBuilder); ok {
		if cell == nil {
			lb.AppendNull()
			return nil
		}
		lb.Append(true)
		vb := lb.ValueBuilder()
		for _, v := range cell {
			if err := appendValue(vb, k, v); err != nil {
				vb.AppendNull()
				if rerr := rn.cellReject(t.schema.Field(ci).Name, err); rerr != nil {
					return rerr
				}
			}
		}
		return nil
	}
	if len(cell) == 0 {
		fb.AppendNull()
		return nil
	}
	if err := appendValue(fb, k, cell[0]); err != nil {
		fb.AppendNull()
		return rn.cellReject(t.schema.Field(ci).Name, err)
	}
	return nil
}

// added counts n new rows in t and flushes it when full.
func (rn *run) added(t *table, n int) error {
	t.rows += n
	rn.stats.Rows[t.name] += int64(n)
	if t.rows >= rn.e.batchRows {
		return rn.flush(t)
	}
	return nil
}

func (rn *run) flush(t *table) error {
	if t.rows == 0 {
		return nil
	}
	rec := t.b.NewRecordBatch()
	t.rows = 0
	defer rec.Release()
	if err := rn.sink.WriteBatch(rn.ctx, t.name, rec); err != nil {
		return fmt.Errorf("write %s batch: %w", t.name, err)
	}
	return nil
}

func (rn *run) flushAll() error {
	for _, t := range rn.tables {
		if err := rn.flush(t); err != nil {
			return err
		}
	}
	return rn.flush(rn.res)
}
