package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// An export is what the end-to-end benchmark loads: the sandbox payer's
// whole population as a bulk export would deliver it, every resource type
// in its real proportions, claims and labs spread over ExportYears years.

// ExportYears is the history of a generated export: service dates spread
// over this many years, so that year partitions have something to split.
const ExportYears = 5

// exportLinesPerFile splits each type's output as servers do (CMS: 50,000
// lines a file in practice), so files load in parallel.
const exportLinesPerFile = 50_000

// ExportStats describes a generated export.
type ExportStats struct {
	Members   int
	Resources int64
	Bytes     int64
	Files     int
}

// GenerateExport writes an export of about target bytes into dir (created
// if missing): files <Type>.<nnn>.ndjson of the sandbox's population with
// seed 1 and ExportYears years of history. Members are added until the
// export holds target bytes, estimated from a sample; the result is within
// a few percent of target. Memory stays bounded by one member.
func GenerateExport(dir string, target int64) (ExportStats, error) {
	perMember, err := bytesPerMember()
	if err != nil {
		return ExportStats{}, err
	}
	members := max(int(target/perMember), 10)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ExportStats{}, fmt.Errorf("generate export: %w", err)
	}
	w := &exportWriter{dir: dir, files: map[string]*typeFile{}}
	err = sandbox.Generate(sandbox.Config{Members: members, Seed: 1, HistoryYears: ExportYears, Start: exportStart},
		w.write)
	if cerr := w.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ExportStats{}, fmt.Errorf("generate export: %w", err)
	}
	return ExportStats{Members: members, Resources: w.resources, Bytes: w.bytes, Files: w.nfiles}, nil
}

// exportStart fixes the sandbox clock, so exports are the same every day.
var exportStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// bytesPerMember measures the export size of 200 members.
func bytesPerMember() (int64, error) {
	const sample = 200
	var n int64
	err := sandbox.Generate(sandbox.Config{Members: sample, Seed: 1, HistoryYears: ExportYears, Start: exportStart},
		func(_ string, line []byte) error { n += int64(len(line)) + 1; return nil })
	if err != nil {
		return 0, fmt.Errorf("generate export: %w", err)
	}
	return n / sample, nil
}

type typeFile struct {
	f     *os.File
	w     *bufio.Writer
	lines int
	seq   int
}

type exportWriter struct {
	dir       string
	files     map[string]*typeFile
	resources int64
	bytes     int64
	nfiles    int
}

func (e *exportWriter) write(typ string, line []byte) error {
	tf := e.files[typ]
	if tf == nil {
		tf = &typeFile{}
		e.files[typ] = tf
	}
	if tf.f == nil || tf.lines == exportLinesPerFile {
		if err := tf.closeFile(); err != nil {
			return err
		}
		tf.seq++
		f, err := os.Create(filepath.Join(e.dir, fmt.Sprintf("%s.%03d.ndjson", typ, tf.seq)))
		if err != nil {
			return err
		}
		tf.f, tf.w, tf.lines = f, bufio.NewWriterSize(f, 1<<20), 0
		e.nfiles++
	}
	tf.w.Write(line)
	if err := tf.w.WriteByte('\n'); err != nil {
		return err
	}
	tf.lines++
	e.resources++
	e.bytes += int64(len(line)) + 1
	return nil
}

func (tf *typeFile) closeFile() error {
	if tf.f == nil {
		return nil
	}
	err := tf.w.Flush()
	if cerr := tf.f.Close(); err == nil {
		err = cerr
	}
	tf.f = nil
	return err
}

func (e *exportWriter) close() error {
	var first error
	for _, tf := range e.files {
		if err := tf.closeFile(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// GenerateChanges writes into out an incremental export of the export in
// dir: every step-th resource of every file (so changes spread over every
// type, year and file) in a new version, its meta.lastUpdated moved
// forward by a day. Every other one changes a value as well, as a claim
// adjusted or a measurement corrected does: its first amount (a claim's
// first adjudication), or its first number value (an observation's
// quantity) when it has no amount, goes up by one. The others change
// nothing else, as a server's re-sent or re-indexed resource does. It
// returns the number of changed resources.
func GenerateChanges(dir, out string, step int) (int64, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, fmt.Errorf("generate changes: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil {
		return 0, fmt.Errorf("generate changes: %w", err)
	}
	sort.Strings(files)
	var n int64
	for _, path := range files {
		k, err := changeFile(path, filepath.Join(out, filepath.Base(path)), step)
		if err != nil {
			return 0, fmt.Errorf("generate changes: %w", err)
		}
		n += k
	}
	return n, nil
}

// changeFile writes every step-th line of path, re-dated, to dst (no file
// when none is picked).
func changeFile(path, dst string, step int) (int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var buf bytes.Buffer
	var n int64
	key := []byte(`"lastUpdated":"`)
	for i := 0; sc.Scan(); i++ {
		if i%step != step/2 {
			continue
		}
		line := sc.Bytes()
		j := bytes.Index(line, key)
		if j < 0 {
			return 0, fmt.Errorf("%s line %d: no meta.lastUpdated", path, i+1)
		}
		start := j + len(key)
		end := start + bytes.IndexByte(line[start:], '"')
		t, err := time.Parse(time.RFC3339Nano, string(line[start:end]))
		if err != nil {
			return 0, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		var out []byte
		out = append(out, line[:start]...)
		out = append(out, t.Add(24*time.Hour).Format(time.RFC3339Nano)...)
		out = append(out, line[end:]...)
		if n%2 == 1 {
			out = changeValue(out)
		}
		buf.Write(out)
		buf.WriteByte('\n')
		n++
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, os.WriteFile(dst, buf.Bytes(), 0o644)
}

var (
	amountRE = regexp.MustCompile(`"amount":\{"value":(-?[0-9]+(?:\.[0-9]+)?)`)
	valueRE  = regexp.MustCompile(`"value":(-?[0-9]+(?:\.[0-9]+)?)`)
)

// changeValue adds one to the first amount of line, or to its first
// number value when it has no amount, keeping the number's decimals; a
// line with neither comes back as it is.
func changeValue(line []byte) []byte {
	m := amountRE.FindSubmatchIndex(line)
	if m == nil {
		m = valueRE.FindSubmatchIndex(line)
	}
	if m == nil {
		return line
	}
	num := string(line[m[2]:m[3]])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return line
	}
	decimals := 0
	if i := strings.IndexByte(num, '.'); i >= 0 {
		decimals = len(num) - i - 1
	}
	out := append([]byte{}, line[:m[2]]...)
	out = strconv.AppendFloat(out, v+1, 'f', decimals, 64)
	return append(out, line[m[3]:]...)
}
