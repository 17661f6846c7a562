package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/transform"
)

// LoadDir transforms and loads NDJSON files already on disk (written by
// another client, a BCDA download, a fixture) with the same upsert, delete
// and reject rules as Run. Every *.ndjson and *.ndjson.gz file of dir is
// read, whatever its name: the resourceType of each line decides its
// table. A manifest.json beside them, when present, gives the
// transactionTime (recorded with the run) and names the deleted[] and
// error[] files; files named deleted.*.ndjson (as fhirlake export writes
// them) are tombstones too. The watermark of Source and scope "files"
// moves only when the manifest gives a transactionTime.
func (p Pipeline) LoadDir(ctx context.Context, dir string) (sum *Summary, err error) {
	p = p.withDefaults()
	if p.Warehouse == "" || len(p.Views) == 0 {
		return nil, errors.New("pipeline: Warehouse and Views are required")
	}
	started := p.Now()
	runID := newRunID(started)
	log := p.Log.With("run", runID, "source", p.Source)
	ctx = p.runContext(ctx, log)
	sum = &Summary{RunID: runID, Source: p.Source, Scope: "files", Timings: map[string]float64{}}

	if err := os.MkdirAll(filepath.Dir(p.Warehouse), 0o700); err != nil {
		return sum, fmt.Errorf("warehouse directory: %w", err)
	}
	lock, err := lockfile.Acquire(p.Warehouse, "fhirlake load")
	if err != nil {
		return sum, err
	}
	defer lock.Release()

	ctx, release, err := p.holdSource(ctx, log, "fhirlake load", runID)
	if err != nil {
		return sum, err
	}
	defer release()
	defer func() { err = leaseLost(ctx, err) }()
	// The files are here: the warehouse the checks open is the one the
	// load writes.
	_, w, err := p.preflightOpen(ctx, log, nil)
	if err != nil {
		return sum, err
	}
	if w != nil {
		defer w.Close()
	}
	res, err := localResult(dir)
	if err != nil {
		return sum, err
	}
	if len(res.Files) == 0 {
		return sum, fmt.Errorf("%s holds no .ndjson or .ndjson.gz files", dir)
	}
	// Without a manifest nothing says up to when the data go: the run
	// records no transaction time and no watermark moves.
	log.Info("loading files from disk", "dir", dir, "files", len(res.Files))
	// Files on disk are no incremental export: nothing to back-fill.
	parts := []*part{{RosterRun: RosterRun{Request: extract.Request{Types: p.Request.Types}, Matches: p.Matches, Scope: sum.Scope}, res: res}}
	if err := p.load(ctx, log, parts, sum, started, w); err != nil {
		return sum, err
	}
	return sum, nil
}

// ErrFileCount means a file on disk does not hold the number of resources
// its manifest declares: it was cut short (or padded) after the export.
// Loading it would move the watermark past data that is not there, so the
// load fails; the same files will fail the same way again.
var ErrFileCount = errors.New("file does not match its manifest")

// localResult describes the files of dir as an export result. With a
// manifest, each of its entries is matched to a file of dir, by the name
// fhirlake export gives it (Type.001.ndjson) or else by the last element of
// its URL (with or without .gz), and takes the entry's kind and declared
// resourceType; an output file whose entry declares a count must hold that
// many resources (non-blank lines), and an entry without a file fails the
// load. Files no entry names are loaded as output (or as tombstones or
// errors by their deleted./error. prefix), without a declared type.
func localResult(dir string) (*extract.Result, error) {
	m := &extract.Manifest{}
	if _, err := os.Stat(filepath.Join(dir, extract.ManifestFile)); err == nil {
		if m, err = extract.ReadManifest(filepath.Join(dir, extract.ManifestFile)); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	present := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".ndjson") || strings.HasSuffix(n, ".ndjson.gz")) && !strings.HasPrefix(n, ".") {
			present[n] = true
		}
	}
	res := &extract.Result{Manifest: m, Dir: dir}
	claimed := map[string]bool{}
	for _, lf := range extract.LocalFiles(m) {
		name := ""
		base := urlBase(lf.URL)
		for _, cand := range []string{lf.Name, lf.Name + ".gz", base, base + ".gz"} {
			if present[cand] && !claimed[cand] {
				name = cand
				break
			}
		}
		if name == "" {
			return nil, fmt.Errorf("load %s: the manifest lists %s (%s, kind %s), which is not in the directory: %w",
				dir, base, lf.Type, lf.Kind, ErrFileCount)
		}
		claimed[name] = true
		f := lf.File
		f.Name = name
		if f.Kind == extract.KindOutput && lf.Count != nil {
			n, err := countResources(filepath.Join(dir, name))
			var dmg *transform.DamagedError
			if errors.As(err, &dmg) {
				return nil, fmt.Errorf("load %s: the manifest declares %d resources, the file holds %d before its %v: %w", name, *lf.Count, n, dmg, ErrFileCount)
			}
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
			if n != *lf.Count {
				return nil, fmt.Errorf("load %s: the manifest declares %d resources, the file holds %d: %w", name, *lf.Count, n, ErrFileCount)
			}
		}
		res.Files = append(res.Files, f)
	}
	var rest []string
	for n := range present {
		if !claimed[n] {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	for _, n := range rest {
		kind := extract.KindOutput
		switch {
		case strings.HasPrefix(n, "deleted."):
			kind = extract.KindDeleted
		case strings.HasPrefix(n, "error."):
			kind = extract.KindError
		}
		res.Files = append(res.Files, extract.File{Kind: kind, Name: n})
	}
	return res, nil
}

// urlBase is the last element of a URL's path: the file name other clients
// give a download. The query (a signature, perhaps) is no part of it.
func urlBase(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// countResources counts the non-blank lines of an NDJSON file, read as the
// transform reads it (gunzipped, without a byte-order mark).
func countResources(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, closer, err := transform.OpenInput(f)
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), transform.MaxLineBytes)
	var n int64
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	return n, sc.Err()
}
