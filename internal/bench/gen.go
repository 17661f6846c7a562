// Package bench holds the transform benchmarks and their yardstick:
// fhirlake's built-in views against DuckDB's own read_ndjson over the same
// generated NDJSON file. Nothing outside the benchmarks imports it.
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// Kind names a generated workload.
type Kind string

// Workloads.
const (
	EOB         Kind = "ExplanationOfBenefit" // claims with lines and adjudications, ~9 KB a line
	Observation Kind = "Observation"          // labs and vitals, ~1 KB a line
)

// DefaultMB is the size of a generated file when FHIRLAKE_BENCH_MB is unset.
const DefaultMB = 500

// TargetBytes returns the generated file size: FHIRLAKE_BENCH_MB megabytes
// (10^6 bytes), DefaultMB when the variable is unset or not a positive
// integer.
func TargetBytes() int64 {
	mb, err := strconv.Atoi(os.Getenv("FHIRLAKE_BENCH_MB"))
	if err != nil || mb <= 0 {
		mb = DefaultMB
	}
	return int64(mb) * 1e6
}

// Generate writes dir/<kind>.ndjson: the sandbox generator's resources of
// kind (500 members, seed 1) repeated until the file holds at least
// target bytes. Repetition r > 0 gets ids "<id>-r<r>", so every id is
// unique. It returns the path and the number of resources written.
func Generate(dir string, kind Kind, target int64) (string, int64, error) {
	srv, err := sandbox.New(sandbox.Config{Members: 500, Seed: 1})
	if err != nil {
		return "", 0, fmt.Errorf("generate %s: %w", kind, err)
	}
	type tmpl struct{ head, tail []byte } // split around the id's closing quote
	var tmpls []tmpl
	var p fastjson.Parser
	for _, res := range srv.Resources(string(kind)) {
		v, err := p.ParseBytes(res)
		if err != nil {
			return "", 0, fmt.Errorf("generate %s: %w", kind, err)
		}
		id := v.GetStringBytes("id")
		key := append(append([]byte(`"id":"`), id...), '"')
		i := bytes.Index(res, key)
		if i < 0 {
			return "", 0, fmt.Errorf("generate %s: id %q not found as written", kind, id)
		}
		cut := i + len(key) - 1
		tmpls = append(tmpls, tmpl{head: res[:cut], tail: bytes.TrimSpace(res[cut:])})
	}
	if len(tmpls) == 0 {
		return "", 0, fmt.Errorf("generate %s: the sandbox holds no such resources", kind)
	}
	path := filepath.Join(dir, string(kind)+".ndjson")
	f, err := os.Create(path)
	if err != nil {
		return "", 0, fmt.Errorf("generate %s: %w", kind, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var written, n int64
	var suffix []byte
	for r := 0; written < target; r++ {
		suffix = suffix[:0]
		if r > 0 {
			suffix = strconv.AppendInt(append(suffix, "-r"...), int64(r), 10)
		}
		for _, t := range tmpls {
			w.Write(t.head)
			w.Write(suffix)
			w.Write(t.tail)
			w.WriteByte('\n')
			written += int64(len(t.head) + len(suffix) + len(t.tail) + 1)
			n++
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", 0, fmt.Errorf("generate %s: %w", kind, err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("generate %s: %w", kind, err)
	}
	return path, n, nil
}
