package extract

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/valyala/fastjson"
)

// Tombstone is a resource the server reports deleted since _since.
type Tombstone struct {
	ResourceType string
	ID           string
}

// ReadDeleted reads a manifest deleted[] file: one transaction Bundle per
// line whose entries carry request.method DELETE and request.url Type/id.
// Errors name the file and line, never the content.
func ReadDeleted(path string) ([]Tombstone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read deleted file: %w", err)
	}
	defer f.Close()
	name := filepath.Base(path)
	r, err := maybeGunzip(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	var p fastjson.Parser
	var out []Tombstone
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		v, err := p.ParseBytes(b)
		if err != nil || string(v.GetStringBytes("resourceType")) != "Bundle" {
			return nil, fmt.Errorf("%s line %d: not a Bundle", name, line)
		}
		for i, e := range v.GetArray("entry") {
			method := string(e.GetStringBytes("request", "method"))
			url := strings.TrimPrefix(string(e.GetStringBytes("request", "url")), "/")
			typ, id, ok := strings.Cut(url, "/")
			if method != "DELETE" || !ok || typ == "" || id == "" || strings.Contains(id, "/") {
				return nil, fmt.Errorf("%s line %d entry %d: want request.method DELETE and request.url Type/id", name, line, i)
			}
			out = append(out, Tombstone{ResourceType: typ, ID: id})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
