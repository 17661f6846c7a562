package iceberg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/fhirlake/fhirlake/load"
)

// One namespace may be written by several warehouses, on different
// machines: one Airflow task per source, all landing in the same tables.
// The lake, not a warehouse, holds each source's state: its rows, and in
// the bookkeeping tables its runs, watermarks and version index. The
// namespace's properties say, per source, which warehouse published it
// last and how many of its runs the lake mirrors, the last of them
// included. A warehouse that did not publish a source last restores the
// source from the lake before it runs it (load.SourceLake); a run leases
// its source (lease.go) so that two never run one source at once.
//
// A lake written by a release before shared lakes has the legacy keys
// (fhirlake.warehouse-id, fhirlake.warehouse, fhirlake.runs,
// fhirlake.last-run): its warehouse writes every source until its next
// publish moves them to the keys below. A lake of the release after that
// has fhirlake.mirror.<warehouse id>.runs and .last-run, which the next
// publish of that warehouse removes.
const (
	propWarehouseID = "fhirlake.warehouse-id" // legacy: the one warehouse
	propWarehouse   = "fhirlake.warehouse"    // legacy: its path
	propRuns        = "fhirlake.runs"         // legacy: committed runs mirrored
	propLastRun     = "fhirlake.last-run"     // legacy: the last of them

	// fhirlake.source.<source>.warehouse-id and .warehouse: the warehouse
	// that published a source last, and its path (for messages);
	// .runs and .last-run: how many committed runs of the source the lake
	// mirrors, and the last of them.
	propSourcePrefix = "fhirlake.source."
	// fhirlake.mirror.<warehouse id>.runs and .last-run: per warehouse,
	// the previous release's record; removed.
	propMirrorPrefix = "fhirlake.mirror."
)

// orphanAge is how old a file no snapshot references must be before it is
// removed as the orphan of a failed commit: a younger one may belong to a
// commit in progress, of another warehouse writing the same lake.
const orphanAge = time.Hour

// namespace reads the namespace's properties.
type namespace struct{ props iceberg.Properties }

func sourceKey(source, key string) string { return propSourcePrefix + source + "." + key }

// owner is the warehouse that published source last (id and path), ""
// for none.
func (n namespace) owner(source string) (id, path string) {
	if id := n.props[sourceKey(source, "warehouse-id")]; id != "" {
		return id, n.props[sourceKey(source, "warehouse")]
	}
	return n.props[propWarehouseID], n.props[propWarehouse]
}

// check refuses any warehouse but the legacy one in a lake of an earlier
// release.
func (n namespace) check(lk *Lake, path, id string) error {
	if legacy := n.props[propWarehouseID]; legacy != "" && legacy != id {
		return fmt.Errorf("%w: the Iceberg lake %s (namespace %s) mirrors warehouse %s (id %s), but this command writes warehouse %s: point the run at its own lake or namespace, or let %s publish once with this release, which lets other warehouses write other sources",
			load.ErrLakeMismatch, lk.location, lk.ns[0], n.props[propWarehouse], legacy, path, n.props[propWarehouse])
	}
	return nil
}

// stale reports whether warehouse id ("" for a new one) lacks the latest
// published state of source: another warehouse published it last.
func (n namespace) stale(id, source string) bool {
	owner, _ := n.owner(source)
	return owner != "" && owner != id
}

// lastRun is the last run of source the lake mirrors, "" when unknown.
func (n namespace) lastRun(source string) string {
	return n.props[sourceKey(source, "last-run")]
}

// shared reports whether a warehouse other than id published some source.
func (n namespace) shared(id string) bool {
	for k, v := range n.props {
		if strings.HasPrefix(k, propSourcePrefix) && strings.HasSuffix(k, ".warehouse-id") && v != id {
			return true
		}
	}
	return false
}

// owned lists the sources warehouse id published last, sorted.
func (n namespace) owned(id string) []string {
	var out []string
	for k, v := range n.props {
		if strings.HasPrefix(k, propSourcePrefix) && strings.HasSuffix(k, ".warehouse-id") && v == id {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(k, propSourcePrefix), ".warehouse-id"))
		}
	}
	slices.Sort(out)
	return out
}

// behind reports whether the lake does not mirror every committed run of
// source but current ("" for none), given the warehouse's committed runs
// of source: a publish did not finish, or the lake has never recorded the
// source with this release.
func (n namespace) behind(source string, runs []string, current string) bool {
	mirrored, err := strconv.Atoi(n.props[sourceKey(source, "runs")])
	if err != nil {
		return true
	}
	if last := n.lastRun(source); last != "" && !slices.Contains(runs, last) {
		return true
	}
	want := len(runs)
	if current != "" && slices.Contains(runs, current) {
		want--
	}
	return want != mirrored
}

// published lists every source the lake records, with its runs.
func (n namespace) published() map[string]load.Published {
	out := map[string]load.Published{}
	for k, v := range n.props {
		if strings.HasPrefix(k, propSourcePrefix) && strings.HasSuffix(k, ".warehouse-id") && v != "" {
			s := strings.TrimSuffix(strings.TrimPrefix(k, propSourcePrefix), ".warehouse-id")
			runs, _ := strconv.Atoi(n.props[sourceKey(s, "runs")])
			out[s] = load.Published{Runs: runs, LastRun: n.lastRun(s)}
		}
	}
	return out
}

// mirror is what the lake mirrors of a source after a publish.
type mirror struct {
	runs int    // committed runs
	last string // the last of them, "" for none
}

// record returns the property updates and removals that say warehouse id
// at path published sources last and the lake mirrors their runs.
func (n namespace) record(id, path string, sources map[string]mirror) (removals []string, updates iceberg.Properties) {
	updates = iceberg.Properties{}
	for s, m := range sources {
		updates[sourceKey(s, "warehouse-id")] = id
		updates[sourceKey(s, "warehouse")] = path
		updates[sourceKey(s, "runs")] = strconv.Itoa(m.runs)
		updates[sourceKey(s, "last-run")] = m.last
	}
	if n.props[propWarehouseID] == id {
		removals = []string{propWarehouseID, propWarehouse, propRuns, propLastRun}
	}
	for _, k := range []string{propMirrorPrefix + id + ".runs", propMirrorPrefix + id + ".last-run"} {
		if _, ok := n.props[k]; ok {
			removals = append(removals, k)
		}
	}
	return removals, updates
}

func lastOf(runs []string) string {
	if len(runs) == 0 {
		return ""
	}
	return slices.Max(runs)
}
