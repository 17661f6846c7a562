package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/lockfile"
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
func (p Pipeline) LoadDir(ctx context.Context, dir string) (*Summary, error) {
	p = p.withDefaults()
	if p.Warehouse == "" || len(p.Views) == 0 {
		return nil, errors.New("pipeline: Warehouse and Views are required")
	}
	started := p.Now()
	runID := newRunID(started)
	log := p.Log.With("run", runID, "source", p.Source)
	ctx = p.runContext(ctx, log)
	sum := &Summary{RunID: runID, Source: p.Source, Scope: "files", Timings: map[string]float64{}}

	lock, err := lockfile.Acquire(p.Warehouse, "fhirlake load")
	if err != nil {
		return sum, err
	}
	defer lock.Release()

	if _, _, err := p.preflight(ctx); err != nil {
		return sum, err
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
	sum.TransactionTime = res.Manifest.TransactionTime
	log.Info("loading files from disk", "dir", dir, "files", len(res.Files))
	if err := p.load(ctx, log, res, sum, started); err != nil {
		return sum, err
	}
	return sum, nil
}

// localResult describes the files of dir as an export result.
func localResult(dir string) (*extract.Result, error) {
	m := &extract.Manifest{}
	if _, err := os.Stat(filepath.Join(dir, extract.ManifestFile)); err == nil {
		if m, err = extract.ReadManifest(filepath.Join(dir, extract.ManifestFile)); err != nil {
			return nil, err
		}
	}
	named := func(entries []extract.FileEntry) []string {
		var out []string
		for _, e := range entries {
			out = append(out, path.Base(e.URL))
		}
		return out
	}
	deleted, errs := named(m.Deleted), named(m.Error)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	res := &extract.Result{Manifest: m, Dir: dir}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".ndjson") || strings.HasSuffix(n, ".ndjson.gz")) || strings.HasPrefix(n, ".") {
			continue
		}
		kind := extract.KindOutput
		switch {
		case strings.HasPrefix(n, "deleted.") || slices.Contains(deleted, n):
			kind = extract.KindDeleted
		case strings.HasPrefix(n, "error.") || slices.Contains(errs, n):
			kind = extract.KindError
		}
		res.Files = append(res.Files, extract.File{Kind: kind, Name: n})
	}
	return res, nil
}
