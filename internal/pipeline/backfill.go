package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/transform"
)

// The _since trap: an incremental export returns what changed since the
// watermark, but a member who joins the scope (newly attributed to the
// provider, or newly enrolled) brings a history whose claims and labs were
// last updated long before it. Only their Group membership or Patient
// changed, so _since alone silently drops that history. An incremental run
// therefore looks for members new to the warehouse and exports their full
// history in the same commit.

// Backfill reports what a run did about members new to its scope.
type Backfill struct {
	// Patients are the members new to the scope (ids of Patient).
	Patients []string `json:"patients,omitempty"`
	// Mode is "patient" (an export with the patient parameter and no
	// _since) or "full" (the server refused that, so the whole scope was
	// exported again without _since); "" when nothing was needed.
	Mode string `json:"mode,omitempty"`
}

// backfillAll exports, for each incremental export of the run, the full
// history of its members new to the warehouse into the loader, and says
// so in sum. A run of several exports asks each for the new members its
// own files hold (part.members).
func (p Pipeline) backfillAll(ctx context.Context, log *slog.Logger, loader load.Loader, engine *transform.Engine, root string, parts []*part, sum *Summary) error {
	if p.Client == nil || !slices.ContainsFunc(parts, func(pt *part) bool { return !pt.Request.Since.IsZero() }) {
		return nil
	}
	// The patients an export names (a roster's patient-filtered export)
	// are its members even when nothing of theirs changed since the
	// watermark: one the warehouse does not hold has just joined.
	var asked []string
	for _, pt := range parts {
		if pt.Request.Since.IsZero() {
			continue
		}
		for _, ref := range pt.Request.Patients {
			id := strings.TrimPrefix(ref, "Patient/")
			asked = append(asked, id)
			if pt.members != nil {
				pt.members[id] = true
			}
		}
	}
	seen := map[string]bool{}
	var ids []string
	for _, src := range memberColumns(p.Views) {
		var also []string
		if src.patientKey {
			also = asked
		}
		vals, err := loader.NewValues(ctx, src.table, src.column, also)
		if err != nil {
			return err
		}
		for _, v := range vals {
			if !seen[v] {
				seen[v] = true
				ids = append(ids, v)
			}
		}
	}
	slices.Sort(ids)
	for _, pt := range parts {
		if pt.Request.Since.IsZero() {
			continue
		}
		mine := ids
		if pt.members != nil {
			mine = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !pt.members[id] })
		}
		if len(mine) == 0 {
			continue
		}
		bf, err := p.backfill(ctx, log, loader, engine, root, pt, mine)
		if err != nil {
			return err
		}
		sum.Backfill.Patients = append(sum.Backfill.Patients, bf.Patients...)
		if sum.Backfill.Mode != "full" {
			sum.Backfill.Mode = bf.Mode
		}
		log.Info("back-fill done", "scope", pt.Scope, "members", len(bf.Patients), "mode", bf.Mode)
	}
	sum.Backfill.Patients = slices.Compact(slices.Sorted(slices.Values(sum.Backfill.Patients)))
	return nil
}

// backfill exports the full history of the members ids, new to the scope
// of the incremental export pt, into the loader: in patient-filtered
// exports of pt's request without _since, or one full export of it when
// the server refuses those. Its files go in pt's job directory, named
// from root.
func (p Pipeline) backfill(ctx context.Context, log *slog.Logger, loader load.Loader, engine *transform.Engine, root string, pt *part, ids []string) (Backfill, error) {
	s := pt.sink(loader, p.Views)
	dir := pt.res.Dir
	bf := Backfill{Patients: ids, Mode: "patient"}
	// The back-fill's exports log as part of the run, marked as such.
	log = log.With("phase", "backfill")
	ctx = extract.WithLogger(ctx, log)
	log.Info("back-filling the history of members new to the scope", "scope", pt.Scope, "members", len(ids))
	// As many patient-filtered exports as the server takes patients
	// (MaxPatients each), all loaded into this run.
	per := p.MaxPatients
	if per <= 0 {
		per = DefaultMaxPatients
	}
	for k, start := 0, 0; start < len(ids); k, start = k+1, start+per {
		chunk := ids[start:min(start+per, len(ids))]
		req := pt.Request
		req.Since = time.Time{}
		req.Post = true
		req.Patients = make([]string, len(chunk))
		for i, id := range chunk {
			req.Patients[i] = "Patient/" + id
		}
		if req.Group == "" {
			req.Patient = true // Patient/$export takes the patient parameter
		}
		bdir := filepath.Join(dir, "backfill")
		if k > 0 {
			bdir += "-" + strconv.Itoa(k+1)
		}
		res, err := p.Client.Export(ctx, req, bdir)
		var se *extract.StatusError
		if errors.As(err, &se) && (se.Status == 400 || se.Status == 422 || se.Status == 405 || se.Status == 501) {
			// The server cannot filter by patient: export the whole scope.
			log.Warn("server refused a patient-filtered export; back-filling with a full export of the scope", "status", se.Status)
			bf.Mode = "full"
			req = pt.Request
			req.Since = time.Time{}
			bdir = filepath.Join(dir, "backfill-full")
			res, err = p.Client.Export(ctx, req, bdir)
		}
		if err != nil {
			return bf, fmt.Errorf("back-fill of %d new members: %w", len(ids), err)
		}
		var files []extract.File
		for _, f := range res.Files {
			if f.Kind == extract.KindOutput {
				f.Name = filepath.Join(pt.prefix, filepath.Base(bdir), f.Name)
				files = append(files, f)
			}
		}
		if _, err := transformFiles(ctx, engine, root, files, func(extract.File) transform.Sink { return s }, p.Workers); err != nil {
			return bf, fmt.Errorf("back-fill: %w", err)
		}
		if !p.KeepServerJob {
			if err := p.Client.Cancel(ctx, res.StatusURL); err != nil {
				log.Warn("could not delete the back-fill job on the server", "error", err.Error())
			}
		}
		if bf.Mode == "full" {
			break // the whole scope holds every chunk's members
		}
	}
	return bf, nil
}
