package transform

import (
	"bytes"
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// MemSink is an in-memory Sink for tests and small runs. It keeps every
// batch (retained) and reject; Release frees the batches.
type MemSink struct {
	mu      sync.Mutex // guards the fields below
	Batches map[string][]arrow.RecordBatch
	Rejects []Reject
}

var _ Sink = (*MemSink)(nil)

// NewMemSink returns an empty MemSink.
func NewMemSink() *MemSink { return &MemSink{Batches: map[string][]arrow.RecordBatch{}} }

// WriteBatch keeps rec.
func (s *MemSink) WriteBatch(_ context.Context, table string, rec arrow.RecordBatch) error {
	rec.Retain()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Batches[table] = append(s.Batches[table], rec)
	return nil
}

// Reject keeps r.
func (s *MemSink) Reject(_ context.Context, r Reject) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Rejects = append(s.Rejects, r)
	return nil
}

// Rows returns the number of rows received for table.
func (s *MemSink) Rows(table string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, b := range s.Batches[table] {
		n += b.NumRows()
	}
	return n
}

// JSON returns the rows received for table as JSON lines, one object a row.
func (s *MemSink) JSON(table string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf bytes.Buffer
	for _, b := range s.Batches[table] {
		if err := array.RecordToJSON(b, &buf); err != nil {
			return "", err
		}
	}
	return buf.String(), nil
}

// Release releases every kept batch.
func (s *MemSink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bs := range s.Batches {
		for _, b := range bs {
			b.Release()
		}
	}
	s.Batches = map[string][]arrow.RecordBatch{}
}
