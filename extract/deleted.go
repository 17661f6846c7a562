package extract

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Tombstone is a resource the server reports deleted since _since.
type Tombstone struct {
	ResourceType string
	ID           string
}

// FHIR syntax of a resource type name and of a resource id (R4 id:
// [A-Za-z0-9\-\.]{1,64}).
var (
	resourceTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
	resourceIDRE   = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
)

// isFHIRID reports whether s is a FHIR resource id that is also safe as a
// URL path segment: the FHIR syntax allows "." and "..", which a server
// would resolve as relative path steps.
func isFHIRID(s string) bool {
	return resourceIDRE.MatchString(s) && strings.Trim(s, ".") != ""
}

// ReadDeleted reads a manifest deleted[] file, plain or gzip-compressed:
// one transaction Bundle per line whose entries carry request.method DELETE
// and request.url Type/id. Errors name the file and line, never the
// content; a file that cannot be read to its end (a truncated gzip stream)
// is an error, never a shorter list. Lines are read without building a
// tree (jsonScanner): memory is the longest line and the tombstones.
func ReadDeleted(path string) ([]Tombstone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read deleted file: %w", err)
	}
	defer f.Close()
	name := filepath.Base(path)
	r, err := maybeGunzip(f)
	if err != nil {
		return nil, fmt.Errorf("%s line 1: %w", name, err)
	}
	er := &errReader{r: r}
	sc := lineScanner(er)
	var js jsonScanner
	var out []Tombstone
	line := 1
	for ; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ok, typ, _ := js.scan(b)
		if !ok || string(typ) != "Bundle" {
			if er.err != nil {
				// The scanner hands out the last, cut line before
				// it reports why the stream ended early.
				return nil, fmt.Errorf("%s line %d: %w", name, er.line(), er.err)
			}
			return nil, fmt.Errorf("%s line %d: not a Bundle", name, line)
		}
		i := 0
		var bad bool
		eachElement(js.field(b, "entry"), func(e []byte) bool {
			req := js.field(e, "request")
			method, _ := js.str(js.field(req, "method"))
			if string(method) != "DELETE" {
				bad = true
				return false
			}
			url, _ := js.str(js.field(req, "url"))
			typ, id, _ := strings.Cut(strings.TrimPrefix(string(url), "/"), "/")
			if !resourceTypeRE.MatchString(typ) || !isFHIRID(id) {
				bad = true
				return false
			}
			out = append(out, Tombstone{ResourceType: typ, ID: id})
			i++
			return true
		})
		if bad {
			return nil, fmt.Errorf("%s line %d entry %d: want request.method DELETE and request.url Type/id", name, line, i)
		}
	}
	if er.err != nil {
		return nil, fmt.Errorf("%s line %d: %w", name, er.line(), er.err)
	}
	if err := sc.Err(); err != nil { // a line longer than maxLine
		return nil, fmt.Errorf("%s line %d: %w", name, line, err)
	}
	return out, nil
}

// errReader remembers the first error of r other than io.EOF, and the
// newlines read before it, so that a caller can tell a truncated stream
// from bad data and name the line where the stream broke off.
type errReader struct {
	r        io.Reader
	newlines int
	err      error
}

func (e *errReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if e.err == nil {
		e.newlines += bytes.Count(b[:n], []byte{'\n'})
		if err != nil && err != io.EOF {
			e.err = err
		}
	}
	return n, err
}

// line is the 1-based line in which the error happened.
func (e *errReader) line() int { return e.newlines + 1 }
