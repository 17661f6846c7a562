package transform

import (
	"bufio"
	"bytes"
	"io"

	"github.com/klauspost/compress/gzip"
)

// gzipMagic opens every gzip stream (RFC 1952, ID1 ID2).
var gzipMagic = []byte{0x1f, 0x8b}

// utf8BOM is the byte-order mark some exporters write before the first line.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// inputBuffer is the read-ahead used to recognise the input's form.
const inputBuffer = 64 << 10

// OpenInput returns the NDJSON text of r: gunzipped when r starts with the
// gzip magic bytes, whatever a file name says (servers and users name
// compressed files every way), and without a leading UTF-8 byte-order mark,
// which is no part of the first line. Concatenated gzip members are read
// as one stream, as gunzip does. The caller closes the returned closer.
//
// A gzip stream that is damaged (a bad header, a truncated or corrupt
// body, a wrong checksum) gives a *DamagedError, from OpenInput or from
// a Read after the text decoded so far: the lines before the damage are
// good, the rest is lost. Other errors are r's own.
//
// klauspost/compress's gzip decodes the same streams as compress/gzip,
// about twice as fast; it is already a dependency of Arrow and Parquet.
func OpenInput(r io.Reader) (io.Reader, io.Closer, error) {
	br := bufio.NewReaderSize(r, inputBuffer)
	head, err := br.Peek(len(gzipMagic))
	if err != nil && err != io.EOF {
		return nil, nil, err
	}
	if !bytes.Equal(head, gzipMagic) {
		return skipBOM(br), noClose{}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, nil, &DamagedError{Err: err}
	}
	return skipBOM(bufio.NewReaderSize(damageReader{zr}, inputBuffer)), zr, nil
}

// DamagedError is a compressed input that cannot be decoded past a point.
type DamagedError struct{ Err error }

func (e *DamagedError) Error() string { return "damaged gzip stream: " + e.Err.Error() }

func (e *DamagedError) Unwrap() error { return e.Err }

// damageReader marks the decoder's errors as damage.
type damageReader struct{ r io.Reader }

func (d damageReader) Read(b []byte) (int, error) {
	n, err := d.r.Read(b)
	if err != nil && err != io.EOF {
		err = &DamagedError{Err: err}
	}
	return n, err
}

// skipBOM drops a UTF-8 byte-order mark at the start of br.
func skipBOM(br *bufio.Reader) io.Reader {
	if head, _ := br.Peek(len(utf8BOM)); bytes.Equal(head, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	return br
}

// noClose is the closer of plain input: the caller owns r.
type noClose struct{}

func (noClose) Close() error { return nil }
