package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
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

// backfill exports the full history of members new to the scope into the
// loader, when the run is incremental.
func (p Pipeline) backfill(ctx context.Context, log *slog.Logger, loader load.Loader, engine *transform.Engine, s transform.Sink, dir string) (Backfill, error) {
	if p.Request.Since.IsZero() || p.Client == nil {
		return Backfill{}, nil
	}
	var ids []string
	for _, src := range memberColumns(p.Views) {
		vals, err := loader.NewValues(ctx, src.table, src.column)
		if err != nil {
			return Backfill{}, err
		}
		for _, v := range vals {
			if !slices.Contains(ids, v) {
				ids = append(ids, v)
			}
		}
	}
	if len(ids) == 0 {
		return Backfill{}, nil
	}
	slices.Sort(ids)
	bf := Backfill{Patients: ids, Mode: "patient"}
	// The back-fill's exports log as part of the run, marked as such.
	log = log.With("phase", "backfill")
	ctx = extract.WithLogger(ctx, log)
	log.Info("back-filling the history of members new to the scope", "members", len(ids))
	// As many patient-filtered exports as the server takes patients
	// (MaxPatients each), all loaded into this run.
	per := p.MaxPatients
	if per <= 0 {
		per = DefaultMaxPatients
	}
	for k, start := 0, 0; start < len(ids); k, start = k+1, start+per {
		chunk := ids[start:min(start+per, len(ids))]
		req := p.Request
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
			req = p.Request
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
				f.Name = filepath.Join(filepath.Base(bdir), f.Name)
				files = append(files, f)
			}
		}
		if _, err := transformFiles(ctx, engine, dir, files, s, p.Workers); err != nil {
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
