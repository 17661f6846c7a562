package iceberg

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/iceberg-go/catalog"

	"github.com/fhirlake/fhirlake/load"
)

// Iceberg metadata names every file by its absolute location, and the
// catalog names each table's current metadata file the same way. A lake
// folder moved or copied together with its catalog (catalog.db beside the
// warehouse, by default) therefore still points at the old folder: a
// reader would read the old folder's files, and a writer would add
// snapshots there, unseen by the old folder's own catalog. So the lake
// refuses a catalog whose tables of the namespace lie outside its
// location (ErrLakeMoved), and Relocate lets a rebuild from the warehouse
// make the new folder the tables' home.

// away is a table the catalog registers outside the lake's location.
type away struct {
	name string
	root string // the lake location the metadata file lies under, as far as it can be told
}

// elsewhere lists the tables of the namespace whose metadata file the
// catalog places outside the lake's location. It reads the catalog's
// table of tables directly (the layout the SQL catalogs of Java, Python
// and Go share): loading a table would already open the misplaced file.
func (lk *Lake) elsewhere(ctx context.Context) ([]away, error) {
	rows, err := lk.db.QueryContext(ctx, lk.rebind(`SELECT table_name, metadata_location FROM iceberg_tables
		WHERE catalog_name = ? AND table_namespace = ? ORDER BY table_name`), catalogName, strings.Join(lk.ns, "."))
	if err != nil {
		return nil, fmt.Errorf("iceberg lake: list table locations: %w", err)
	}
	defer rows.Close()
	var out []away
	same := map[string]bool{}
	for rows.Next() {
		var name string
		var loc *string
		if err := rows.Scan(&name, &loc); err != nil {
			return nil, fmt.Errorf("iceberg lake: list table locations: %w", err)
		}
		if loc == nil || strings.HasPrefix(*loc, lk.location+"/") {
			continue
		}
		root := *loc
		if i := strings.LastIndex(root, "/"+name+"/metadata/"); i >= 0 {
			root = root[:i]
		}
		if _, ok := same[root]; !ok {
			same[root] = samePlace(root, lk.location)
		}
		if !same[root] {
			out = append(out, away{name: name, root: root})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("iceberg lake: list table locations: %w", err)
	}
	return out, nil
}

// checkHome refuses a catalog that registers tables of the namespace
// outside the lake's location (ErrLakeMoved). Once it found none, it does
// not look again: the lake's own writes put tables under its location.
func (lk *Lake) checkHome(ctx context.Context) error {
	if lk.atHome.Load() {
		return nil
	}
	moved, err := lk.elsewhere(ctx)
	if err != nil {
		return err
	}
	if len(moved) > 0 {
		return lk.movedError(moved)
	}
	lk.atHome.Store(true)
	return nil
}

// movedError says where the catalog keeps the tables and how to go on.
func (lk *Lake) movedError(moved []away) error {
	roots := rootsOf(moved)
	which := moved[0].name
	if len(moved) > 1 {
		which = fmt.Sprintf("%s and %d more", which, len(moved)-1)
	}
	return fmt.Errorf("%w: tables of namespace %s (%s) are registered under %s, not under this lake %s. "+
		"Iceberg metadata names files by absolute location, so a lake moved or copied with its catalog still points at the old place. "+
		"Point --lake at %s, or make %s their home with `fhirlake rebuild --from warehouse --relocate` "+
		"(it rewrites the lake from the warehouse and re-registers the tables here; no file at the old place is touched)",
		load.ErrLakeMoved, lk.ns[0], which, strings.Join(roots, ", "), lk.location, roots[0], lk.location)
}

// Elsewhere lists the names of the tables of the namespace that the
// catalog registers outside the lake's location, and the locations they
// lie under: what Relocate would re-register.
func (lk *Lake) Elsewhere(ctx context.Context) (tables, roots []string, err error) {
	moved, err := lk.elsewhere(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range moved {
		tables = append(tables, m.name)
	}
	return tables, rootsOf(moved), nil
}

// rootsOf lists the locations the tables lie under, each once.
func rootsOf(moved []away) []string {
	var roots []string
	for _, m := range moved {
		if !slices.Contains(roots, m.root) {
			roots = append(roots, m.root)
		}
	}
	return roots
}

// Relocate drops from the catalog the entries of the namespace's tables
// that it registers outside the lake's location, and returns their names.
// Only the entries go: no file is deleted, at the old location or here
// (the lake's copies of the old files are orphans that `lake expire`
// removes). It is the first step of a rebuild from the warehouse, which
// then creates the tables anew under the lake's location; on its own it
// leaves the lake without them.
func (lk *Lake) Relocate(ctx context.Context) ([]string, error) {
	moved, err := lk.elsewhere(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range moved {
		err := lk.cat.DropTable(ctx, append(slices.Clone(lk.ns), m.name))
		if err != nil && !errors.Is(err, catalog.ErrNoSuchTable) {
			return names, fmt.Errorf("iceberg lake: relocate %s: %w", m.name, err)
		}
		names = append(names, m.name)
	}
	return names, nil
}

// samePlace reports whether two file:// locations are one folder reached
// by different paths (a symbolic link on the way): the catalog's paths
// then still lead to the lake's files.
func samePlace(a, b string) bool {
	const scheme = "file://"
	if !strings.HasPrefix(a, scheme) || !strings.HasPrefix(b, scheme) {
		return false
	}
	ra, err := filepath.EvalSymlinks(strings.TrimPrefix(a, scheme))
	if err != nil {
		return false
	}
	rb, err := filepath.EvalSymlinks(strings.TrimPrefix(b, scheme))
	return err == nil && ra == rb
}
