package sandbox

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// changeTypes are the resource types applyChanges updates and deletes:
// a member's clinical and claims data, never the Patient or the
// providers everything points at.
var changeTypes = []string{"ExplanationOfBenefit", "Encounter", "Condition", "Observation", "Coverage"}

// applyChanges makes n changes to the data just before export number seq
// (Config.ChangesPerRun), dated at: about half of them new versions of
// existing resources, a quarter deletions, and new members (each with
// their coverage, claims and visits) for the rest, so that each
// incremental export has something to pick up. What changes depends
// only on the seed and seq. The caller holds s.mu.
func (s *Server) applyChanges(n, seq int, at time.Time) error {
	r := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0xc4a6_0000+uint64(seq)))
	updates, deletes := n/2, n/4
	adds := n - updates - deletes
	pick := func() *record {
		t := changeTypes[r.IntN(len(changeTypes))]
		recs := s.store.byType[t]
		if len(recs) == 0 {
			return nil
		}
		return recs[r.IntN(len(recs))]
	}
	for range updates {
		if rec := pick(); rec != nil {
			// A new version: meta.versionId and lastUpdated move.
			if err := s.store.update(rec.typ, rec.id, at, func(map[string]any) {}); err != nil {
				return err
			}
		}
	}
	for range deletes {
		if rec := pick(); rec != nil {
			if err := s.store.remove(rec.typ, rec.id, at); err != nil {
				return err
			}
		}
	}
	if adds == 0 {
		return nil
	}
	// New members continue the generator's numbering.
	g := &gen{start: s.cfg.Start, years: max(s.cfg.HistoryYears, 1), emit: func(obj) error { return nil }, implausible: s.cfg.ImplausibleVisits}
	g.providers(rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0xb150_0000)))
	g.emit = func(x obj) error {
		raw, err := json.Marshal(x)
		if err != nil {
			return err
		}
		if raw, err = setLastUpdated(raw, at); err != nil {
			return err
		}
		return s.store.putJSON(raw, at)
	}
	for range adds {
		s.added++
		i := s.cfg.Members + s.added
		mr := rand.New(rand.NewPCG(uint64(s.cfg.Seed), uint64(i)))
		g.member(mr, i, mr.IntN(len(g.pcps)))
		if g.err != nil {
			return fmt.Errorf("sandbox: new member %d: %w", i, g.err)
		}
	}
	return nil
}
