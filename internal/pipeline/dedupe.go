package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/transform"
)

// restageDuplicates handles a resource the run carried more than once
// (several lines with its id, as Group exports do with shared resources,
// or two versions of it): the staged rows of every copy are dropped and
// only the winning version's line is transformed again. Without it the
// copies' rows would collide on the primary key, or mix two versions.
func restageDuplicates(ctx context.Context, log *slog.Logger, loader load.Loader, engine *transform.Engine, root string) error {
	dups, err := loader.Duplicates(ctx)
	if err != nil || len(dups) == 0 {
		return err
	}
	log.Info("resources exported more than once; keeping the newest copy", "resources", len(dups))
	if err := loader.Unstage(ctx, dups); err != nil {
		return err
	}
	byFile := map[string]map[int64]bool{}
	for _, d := range dups {
		if byFile[d.File] == nil {
			byFile[d.File] = map[int64]bool{}
		}
		byFile[d.File][d.Line] = true
	}
	names := make([]string, 0, len(byFile))
	for n := range byFile {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		lines, err := readLines(filepath.Join(root, name), byFile[name])
		if err != nil {
			return fmt.Errorf("re-read %s: %w", name, err)
		}
		if _, err := engine.Transform(ctx, name, bytes.NewReader(lines), restageSink{sink{loader}}); err != nil {
			return fmt.Errorf("re-stage %s: %w", name, err)
		}
	}
	return nil
}

// readLines returns the wanted lines (1-based numbers) of an NDJSON file,
// each ending in a newline. Memory holds only those lines.
func readLines(path string, want map[int64]bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, closer, err := transform.OpenInput(f) // the same text, and so the same line numbers, Transform reads
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), transform.MaxLineBytes)
	var out bytes.Buffer
	for n := int64(1); sc.Scan(); n++ {
		if want[n] {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), sc.Err()
}

// restageSink passes table rows through but drops what the first pass
// already recorded: the resource index (whose file and line would now be
// wrong) and rejects.
type restageSink struct{ next transform.Sink }

var _ transform.Sink = restageSink{}

func (s restageSink) WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error {
	if table == transform.ResourcesTable {
		return nil
	}
	return s.next.WriteBatch(ctx, table, rec)
}

func (s restageSink) Reject(context.Context, transform.Reject) error { return nil }
