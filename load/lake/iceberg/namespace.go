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

// One namespace may be shared by several warehouses, each writing its own
// sources: one Airflow task per source on different machines, all landing
// in the same tables. The namespace's properties say which warehouse
// writes each source, and how far the lake mirrors each warehouse.
//
// A lake written by a release before shared lakes has the legacy keys
// (fhirlake.warehouse-id, fhirlake.warehouse, fhirlake.runs,
// fhirlake.last-run): its warehouse writes every source until its next
// publish moves them to the keys below.
const (
	propWarehouseID = "fhirlake.warehouse-id" // legacy: the one warehouse
	propWarehouse   = "fhirlake.warehouse"    // legacy: its path
	propRuns        = "fhirlake.runs"         // legacy: committed runs mirrored
	propLastRun     = "fhirlake.last-run"     // legacy: the last of them

	// fhirlake.source.<source>.warehouse-id and .warehouse: the warehouse
	// that writes a source, and its path (for messages).
	propSourcePrefix = "fhirlake.source."
	// fhirlake.mirror.<warehouse id>.runs and .last-run: how many of the
	// warehouse's committed runs the lake mirrors, and the last of them.
	propMirrorPrefix = "fhirlake.mirror."
)

// orphanAge is how old a file no snapshot references must be before it is
// removed as the orphan of a failed commit: a younger one may belong to a
// commit in progress, of another warehouse writing the same lake.
const orphanAge = time.Hour

// namespace reads the namespace's properties.
type namespace struct{ props iceberg.Properties }

// owner is the warehouse that writes source (id and path), "" for none.
func (n namespace) owner(source string) (id, path string) {
	if id := n.props[propSourcePrefix+source+".warehouse-id"]; id != "" {
		return id, n.props[propSourcePrefix+source+".warehouse"]
	}
	return n.props[propWarehouseID], n.props[propWarehouse]
}

// check refuses warehouse id (at path) when another warehouse writes
// source, or, for a legacy lake, any source.
func (n namespace) check(lk *Lake, path, id, source string) error {
	if legacy := n.props[propWarehouseID]; legacy != "" && legacy != id {
		return fmt.Errorf("%w: the Iceberg lake %s (namespace %s) mirrors warehouse %s (id %s), but this command writes warehouse %s: point the run at its own lake or namespace, or let %s publish once with this release, which lets other warehouses write other sources",
			load.ErrLakeMismatch, lk.location, lk.ns[0], n.props[propWarehouse], legacy, path, n.props[propWarehouse])
	}
	if source == "" {
		return nil
	}
	owner, ownerPath := n.owner(source)
	if owner == "" || owner == id {
		return nil
	}
	return fmt.Errorf("%w: in the Iceberg lake %s (namespace %s), source %s is written by warehouse %s (id %s), but this command writes it from warehouse %s: each source is written by one warehouse",
		load.ErrLakeMismatch, lk.location, lk.ns[0], source, ownerPath, owner, path)
}

// shared reports whether a warehouse other than id writes some source.
func (n namespace) shared(id string) bool {
	for k, v := range n.props {
		if strings.HasPrefix(k, propSourcePrefix) && strings.HasSuffix(k, ".warehouse-id") && v != id {
			return true
		}
	}
	return false
}

// owned lists the sources warehouse id writes, sorted.
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

// published reports whether warehouse id has published to the lake
// before.
func (n namespace) published(id string) bool {
	return n.props[propMirrorPrefix+id+".runs"] != "" || n.props[propWarehouseID] == id
}

// behind reports whether the lake misses more of warehouse id's runs than
// the one being published, or mirrors a run the warehouse does not know.
func (n namespace) behind(id string, runs []string) bool {
	count, last := n.props[propMirrorPrefix+id+".runs"], n.props[propMirrorPrefix+id+".last-run"]
	if count == "" && n.props[propWarehouseID] == id {
		count, last = n.props[propRuns], n.props[propLastRun]
	}
	mirrored, err := strconv.Atoi(count)
	if err != nil {
		return true // new, or never completed a publish
	}
	if last != "" && !slices.Contains(runs, last) {
		return true
	}
	return len(runs)-mirrored > 1
}

// record returns the property updates and removals that say the lake now
// mirrors every one of runs of warehouse id at path, which writes sources.
func (n namespace) record(id, path string, sources, runs []string) (removals []string, updates iceberg.Properties) {
	updates = iceberg.Properties{
		propMirrorPrefix + id + ".runs":     strconv.Itoa(len(runs)),
		propMirrorPrefix + id + ".last-run": lastOf(runs),
	}
	for _, s := range sources {
		updates[propSourcePrefix+s+".warehouse-id"] = id
		updates[propSourcePrefix+s+".warehouse"] = path
	}
	if n.props[propWarehouseID] == id {
		removals = []string{propWarehouseID, propWarehouse, propRuns, propLastRun}
	}
	return removals, updates
}

func lastOf(runs []string) string {
	if len(runs) == 0 {
		return ""
	}
	return slices.Max(runs)
}
