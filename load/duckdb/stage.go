//go:build duckdb_arrow

package duckdb

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A run's rows wait for the commit in Arrow IPC stream files on disk, one
// series of files per table, not in DuckDB: writing a batch is a
// sequential file write that many transform workers do at once (one table
// at a time each), memory holds no more than the batches in flight, and
// DuckDB converts every row once, when the commit inserts it into its
// table. (Staging into DuckDB temporary tables held every row in memory
// until the commit, converted it twice, and made the workers queue behind
// one connection; see issue 15 for the measurements.)

// segment is one sealed stage file.
type segment struct {
	path string
	rows int64
	// gen is the generation of its rows: 0, or n for rows staged after
	// the n-th Unstage (the winning versions of resources carried more
	// than once, which replace every earlier staged row of them).
	gen int
}

// stage is one table's staged rows.
type stage struct {
	dir    string
	name   string
	schema *arrow.Schema

	mu       sync.Mutex // guards everything below
	f        *os.File
	w        *ipc.Writer
	rows     int64 // in the open file
	gen      int   // of the open file
	segments []segment
	seq      int
}

// newStageDir makes the empty folder of a run's stage files: beside the
// warehouse file (WAREHOUSE.stage, removing what a killed run left there:
// one writer at a time holds the warehouse), or a temporary folder for an
// in-memory warehouse. It holds PHI and is private like every file.
func (w *Warehouse) newStageDir() (string, error) {
	if w.path == "" || strings.HasPrefix(filepath.Base(w.path), ":memory:") {
		dir, err := os.MkdirTemp("", "fhirlake-stage-")
		if err != nil {
			return "", fmt.Errorf("stage folder: %w", err)
		}
		return dir, nil
	}
	dir := w.path + ".stage"
	// A killed run's folders: its own and any it was discarding.
	old, _ := filepath.Glob(dir + discardedSuffix + "*")
	for _, d := range append(old, dir) {
		if err := os.RemoveAll(d); err != nil {
			return "", fmt.Errorf("stage folder: %w", err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("stage folder: %w", err)
	}
	return dir, nil
}

// discardStage removes a finished run's stage folder dir in the
// background, under a name of its own so that the next run can make dir
// again at once; Close waits for it. The folder holds about a third of
// the run's input, and its files reach the disk on a large run: removing
// the 3.5 GB of a 10 GB export's full load took a second, which the
// lake's writing, after the commit, no longer waits for.
func (w *Warehouse) discardStage(dir string) {
	gone, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+discardedSuffix)
	if err == nil {
		err = os.Rename(dir, filepath.Join(gone, "stage"))
	}
	if err != nil {
		os.RemoveAll(dir)
		if gone != "" {
			os.RemoveAll(gone)
		}
		return
	}
	w.discarding.Add(1)
	go func() {
		defer w.discarding.Done()
		os.RemoveAll(gone)
	}()
}

// discardedSuffix follows the stage folder's name in the names of the
// folders discardStage removes.
const discardedSuffix = ".discarded-"

func newStage(dir, name string, schema *arrow.Schema) *stage {
	return &stage{dir: dir, name: name, schema: schema}
}

// write appends rec (of the stage's schema) to the open file, opening a
// new one when none is open or the open one holds another generation.
func (s *stage) write(rec arrow.RecordBatch, gen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil && s.gen != gen {
		if err := s.sealLocked(); err != nil {
			return err
		}
	}
	if s.w == nil {
		s.seq++
		path := filepath.Join(s.dir, fmt.Sprintf("%s.%04d.arrows", s.name, s.seq))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("stage %s: %w", s.name, err)
		}
		s.f, s.w, s.rows, s.gen = f, ipc.NewWriter(f, ipc.WithSchema(s.schema)), 0, gen
	}
	if err := s.w.Write(rec); err != nil {
		return fmt.Errorf("stage %s: %w", s.name, err)
	}
	s.rows += rec.NumRows()
	return nil
}

// seal closes the open file, if any, so readers see its rows.
func (s *stage) seal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealLocked()
}

func (s *stage) sealLocked() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stage %s: %w", s.name, err)
	}
	s.segments = append(s.segments, segment{path: s.f.Name(), rows: s.rows, gen: s.gen})
	s.f, s.w = nil, nil
	return nil
}

// sealed returns the sealed segments that keep says to read, sealing the
// open file first.
func (s *stage) sealed(keep func(segment) bool) ([]segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sealLocked(); err != nil {
		return nil, err
	}
	var out []segment
	for _, seg := range s.segments {
		if keep == nil || keep(seg) {
			out = append(out, seg)
		}
	}
	return out, nil
}

// segmentReader streams the batches of several stage files in order, one
// batch in memory at a time. It is an array.RecordReader for DuckDB's
// Arrow scan.
type segmentReader struct {
	schema *arrow.Schema
	paths  []string
	refs   atomic.Int64

	f   *os.File
	r   *ipc.Reader
	cur arrow.RecordBatch
	err error
}

var _ array.RecordReader = (*segmentReader)(nil)

func newSegmentReader(schema *arrow.Schema, segs []segment) *segmentReader {
	sr := &segmentReader{schema: schema}
	for _, s := range segs {
		sr.paths = append(sr.paths, s.path)
	}
	sr.refs.Store(1)
	return sr
}

func (sr *segmentReader) Schema() *arrow.Schema { return sr.schema }

func (sr *segmentReader) Next() bool {
	if sr.cur != nil {
		sr.cur.Release()
		sr.cur = nil
	}
	for sr.err == nil {
		if sr.r == nil {
			if len(sr.paths) == 0 {
				return false
			}
			f, err := os.Open(sr.paths[0])
			if err != nil {
				sr.err = err
				return false
			}
			r, err := ipc.NewReader(f, ipc.WithSchema(sr.schema), ipc.WithAllocator(memory.DefaultAllocator))
			if err != nil {
				f.Close()
				sr.err = fmt.Errorf("read %s: %w", filepath.Base(sr.paths[0]), err)
				return false
			}
			sr.paths = sr.paths[1:]
			sr.f, sr.r = f, r
		}
		if sr.r.Next() {
			sr.cur = sr.r.RecordBatch()
			sr.cur.Retain()
			return true
		}
		if err := sr.r.Err(); err != nil && !errors.Is(err, io.EOF) {
			sr.err = err
		}
		sr.closeFile()
	}
	return false
}

func (sr *segmentReader) closeFile() {
	if sr.r != nil {
		sr.r.Release()
		sr.f.Close()
		sr.r, sr.f = nil, nil
	}
}

func (sr *segmentReader) RecordBatch() arrow.RecordBatch { return sr.cur }

// Record is RecordBatch, for the older interface.
func (sr *segmentReader) Record() arrow.RecordBatch { return sr.cur }

func (sr *segmentReader) Err() error { return sr.err }

func (sr *segmentReader) Retain() { sr.refs.Add(1) }

func (sr *segmentReader) Release() {
	if sr.refs.Add(-1) == 0 {
		if sr.cur != nil {
			sr.cur.Release()
			sr.cur = nil
		}
		sr.closeFile()
	}
}
