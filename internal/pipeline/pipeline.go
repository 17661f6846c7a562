// Package pipeline is the one orchestrator of a fhirlake run: extract the
// export into a work directory, transform its NDJSON through the compiled
// views, load the batches into the warehouse in one commit, then mirror the
// committed tables to the Parquet lake.
package pipeline

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/sync/errgroup"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/private"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/transform"
)

// Pipeline runs export → transform → load for one source. Set the fields,
// then call Run; defaults are applied in one place, withDefaults.
type Pipeline struct {
	// Source names the payer/tenant in bookkeeping (default "default").
	Source string
	// Client talks to the FHIR server. Required by Run.
	Client *extract.Client
	// Request says what to export.
	Request extract.Request
	// WorkDir holds export jobs while a run is in flight:
	// WorkDir/jobs/<source>/<request key>/ with job.json (the job state)
	// beside the downloaded files. The key fingerprints the base URL and the
	// request, so a rerun with the same arguments after a crash resumes the
	// same server job and skips verified files. Default: "fhirlake-work"
	// beside the warehouse file. A committed run's job directory is removed.
	WorkDir string
	// KeepServerJob leaves the export on the server after a successful
	// load; by default it is deleted (DELETE on the status URL).
	KeepServerJob bool
	// Full ignores the stored watermark: the export runs without _since
	// (unless Request.Since is set explicitly).
	Full bool
	// MaxRejects, when set, fails a run that rejects more lines or values
	// than it (ErrTooManyRejects): the run's data are not committed, only its
	// run record (status "rejected") and its rejects. nil means no limit.
	MaxRejects *int64
	// Views are the compiled tables to produce. Required.
	Views []*transform.View
	// SQL holds analytics views (*.sql) created after each load; nil for none.
	SQL fs.FS
	// Warehouse is the DuckDB file (its lock file, PATH.lock, sits beside
	// it). Required.
	Warehouse string
	// OpenWarehouse, when set, opens the warehouse instead of load.Open
	// and load.OpenReadOnly (tests give an in-memory one, load.Memory);
	// the warehouse then counts as existing whatever is at Warehouse.
	OpenWarehouse func(ctx context.Context, path string, readOnly bool) (load.Warehouse, error)
	// Lake is where the lake is: a folder, file:// or s3:// URL; empty
	// skips the lake.
	Lake string
	// LakeFormat is the lake target: "parquet" (the default: Hive-style
	// Parquet in a folder) or "iceberg".
	LakeFormat string
	// LakeOptions configure the lake target (the Iceberg catalog, S3).
	LakeOptions load.LakeOptions
	// MaxPatients bounds the patients of one patient-filtered export (the
	// back-fill of members new to the scope); 0 means DefaultMaxPatients.
	MaxPatients int
	// ScopeName is the run's watermark scope; "" means Scope(Request).
	// A roster spread over several exports gives each its own
	// (RosterRun.Scope).
	ScopeName string
	// LeaseTTL is how long a source's lease in a lake that holds the
	// sources' state (Iceberg) outlives its last renewal: how long a
	// killed worker keeps the source from others (default 2m).
	LeaseTTL time.Duration
	// NoCompact leaves the warehouse's compaction (load.Warehouse.Compact)
	// to a maintenance task: a run otherwise compacts it after its commit
	// when compaction is due.
	NoCompact bool
	// LockWait is how long opening the warehouse waits for another
	// process that has the DuckDB file open (an analyst's DuckDB
	// client, a BI tool) to let it go (0: DefaultLockWait; negative: not
	// at all). A fhirlake run holding the warehouse is not waited for.
	LockWait time.Duration
	// BatchRows bounds the rows per Arrow batch (default 8192).
	BatchRows int
	// Workers is the number of files transformed in parallel (default: the
	// number of CPUs).
	Workers int
	// Log receives the run's log lines; nil discards them. Every line of a
	// run, the extract client's included, carries the run id ("run") and
	// Source ("source"): the client logs to this logger for the run,
	// whatever its own Client.Log says.
	Log *slog.Logger
	// Now is the clock for run bookkeeping; nil means time.Now.
	Now func() time.Time
	// Observe, when set, is called as each stage of a run completes, with
	// the stage name (StageExported, StageTransformed, StageCommitted,
	// StageLake). It runs on the pipeline's goroutine; crash tests stop
	// the process there.
	Observe func(stage string)
	// Progress, when set, is told how the run advances: the export's
	// status, bytes downloaded per file, rows staged per table, and the
	// stages as they complete. nil reports nothing.
	Progress Progress
	// Person says which identifiers link the patients of different
	// sources into one person (the person table).
	Person load.PersonRule
	// Matches are the Payer-to-Payer matches this run's export carries
	// (see RosterRequests); they are recorded with the run.
	Matches []load.MemberMatch
	// Exports, when set, are the exports of a roster (RosterRequests);
	// Request, Matches and ScopeName are then unused, and an export with
	// no Scope has the scope of its request.
	// They are exported in parallel (exportsAtOnce at a time, within the
	// client's rate limit) and loaded in one commit, in which each moves
	// the watermark of its own scope. An export that fails fails the run
	// and commits nothing; a rerun resumes the others' finished jobs.
	Exports []RosterRun
}

// The stages reported to Observe and Progress.Stage.
const (
	StageExported    = "exported"    // every file downloaded and verified
	StageTransformed = "transformed" // every batch staged, nothing committed
	StageCommitted   = "committed"   // the warehouse transaction committed
	StageLake        = "lake"        // the Parquet lake mirrors the commit
)

func (p Pipeline) observe(stage string) {
	if p.Progress != nil {
		p.Progress.Stage(stage)
	}
	if p.Observe != nil {
		p.Observe(stage)
	}
}

// Summary is what a run did.
type Summary struct {
	RunID  string `json:"run_id"`
	Source string `json:"source"`
	Scope  string `json:"scope"`
	// Status is the run's outcome, as fhirlake_runs.status says it:
	// "committed", "rejected" (over MaxRejects: the run and its rejects
	// are recorded, none of its data), or "failed" (nothing recorded).
	Status string     `json:"status"`
	Since  *time.Time `json:"since,omitempty"`
	// TransactionTime is the manifest's; absent when there is none (files
	// loaded without a manifest), and then no watermark moves.
	TransactionTime time.Time `json:"transaction_time,omitzero"`
	Files           int       `json:"files"`
	Lines           int64     `json:"lines"`
	Resources       int64     `json:"resources"`
	Rejects         int64     `json:"rejects"`
	Deleted         int64     `json:"deleted"`
	SkippedOlder    int64     `json:"skipped_older"`
	// Unchanged counts resources the warehouse already held in the same
	// version with the same content: their rows were left as they were.
	Unchanged int64 `json:"unchanged"`
	// Backfill says which members new to the scope had their full history
	// exported by this run.
	Backfill Backfill `json:"backfill"`
	// Watermark lists the resource types whose watermark moved to
	// TransactionTime.
	Watermark    []string             `json:"watermark_advanced"`
	Rows         map[string]int64     `json:"rows"`
	ExportErrors extract.ErrorSummary `json:"export_errors"`
	// PersonConflicts counts the patients whose strong identifiers
	// conflict after the run (see fhirlake_person_conflicts): they are not
	// linked to other records.
	PersonConflicts int64 `json:"person_conflicts"`
	// RefusedParameters lists the kick-off parameters the server refused
	// and what fhirlake did instead (a full export for _since, its own
	// filtering for _typeFilter); FilteredOut counts the resources its
	// own _typeFilter dropped.
	RefusedParameters []extract.Refusal `json:"refused_parameters,omitempty"`
	FilteredOut       int64             `json:"filtered_out,omitempty"`
	// LakeCommitRetries counts the lake commits that lost a race with
	// another writer's and were redone (an Iceberg lake several workers
	// write).
	LakeCommitRetries int64 `json:"lake_commit_retries,omitempty"`
	// Compacted lists the warehouse tables whose replaced rows' space the
	// run reclaimed (see load.Warehouse.Compact).
	Compacted []string `json:"compacted,omitempty"`
	// Exports are the exports of a run that loaded several (a roster
	// spread over exports), each with its own scope and watermark; the
	// run's own Since is then the earliest (absent when any was full) and
	// TransactionTime the earliest.
	Exports []ExportSummary    `json:"exports,omitempty"`
	Timings map[string]float64 `json:"timings_seconds"`
}

// ExportSummary is one export of a run that loaded several.
type ExportSummary struct {
	Scope           string     `json:"scope"`
	Since           *time.Time `json:"since,omitempty"`
	TransactionTime time.Time  `json:"transaction_time,omitzero"`
	Watermark       []string   `json:"watermark_advanced"`
}

func (p Pipeline) withDefaults() Pipeline {
	if p.Source == "" {
		p.Source = "default"
	}
	if p.WorkDir == "" {
		p.WorkDir = filepath.Join(filepath.Dir(p.Warehouse), "fhirlake-work")
	}
	if p.BatchRows <= 0 {
		p.BatchRows = 8192
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.LeaseTTL <= 0 {
		p.LeaseTTL = DefaultLeaseTTL
	}
	return p
}

// The outcomes of a run (Summary.Status).
const (
	StatusCommitted = "committed"
	StatusRejected  = "rejected"
	StatusFailed    = "failed"
)

// ErrTooManyRejects means a run rejected more than Pipeline.MaxRejects.
var ErrTooManyRejects = errors.New("data rejected over threshold")

// jobDir is where the export of req waits for the load.
func (p Pipeline) jobDir(req extract.Request) string {
	return filepath.Join(p.jobRoot(), req.Key(p.Client.BaseURL))
}

// jobRoot is the folder of the source's job directories.
func (p Pipeline) jobRoot() string {
	return filepath.Join(p.WorkDir, "jobs", safe(p.Source))
}

// scope is the run's watermark scope.
func (p Pipeline) scope() string {
	if p.ScopeName != "" {
		return p.ScopeName
	}
	return Scope(p.Request)
}

// Scope names what a request covers, for bookkeeping: "system",
// "patient" or "group/<id>".
func Scope(r extract.Request) string {
	switch {
	case r.Group != "":
		return "group/" + r.Group
	case r.Patient:
		return "patient"
	default:
		return "system"
	}
}

// Run performs one run and returns its summary: the export of Request,
// or those of Exports, loaded in one commit.
func (p Pipeline) Run(ctx context.Context) (sum *Summary, err error) {
	p = p.withDefaults()
	if p.Client == nil || p.Warehouse == "" || len(p.Views) == 0 {
		return nil, errors.New("pipeline: Client, Warehouse and Views are required")
	}
	started := p.Now()
	runID := newRunID(started)
	log := p.Log.With("run", runID, "source", p.Source)
	ctx = p.runContext(ctx, log)
	runs := p.exports()
	sum = &Summary{RunID: runID, Source: p.Source, Scope: runsScope(runs), Timings: map[string]float64{}}

	// One writer per warehouse, checked before anything is touched.
	lock, err := lockfile.Acquire(p.Warehouse, "fhirlake run --source "+p.Source)
	if err != nil {
		return sum, err
	}
	defer lock.Release()
	ctx, release, err := p.holdSource(ctx, log, "fhirlake run", runID)
	if err != nil {
		return sum, err
	}
	defer release()
	defer func() { err = leaseLost(ctx, err) }()

	marks, err := p.preflight(ctx, log, runs)
	if err != nil {
		return sum, err
	}
	for i := range runs {
		if runs[i].Request.Since.IsZero() && !p.Full && !marks[i].IsZero() {
			runs[i].Request.Since = marks[i]
			log.Info("incremental run", "scope", runs[i].Scope, "since", marks[i].Format(time.RFC3339Nano))
		}
	}

	sum.Since = runsSince(runs)

	// A run killed after its commit but before its clean-up left its job
	// behind: downloads holding PHI, and a job on the server.
	p.sweepCommittedJobs(ctx, log)

	t0 := p.Now()
	parts, err := p.exportAll(ctx, log, runs)
	if err != nil {
		return sum, err
	}
	sum.Timings["extract"] = p.Now().Sub(t0).Seconds()
	p.observe(StageExported)

	if err := p.load(ctx, log, parts, sum, started, nil); err != nil {
		return sum, err
	}
	for _, pt := range parts {
		if !p.KeepServerJob {
			if err := p.Client.Cancel(ctx, pt.res.StatusURL); err != nil {
				log.Warn("could not delete the export job on the server", "scope", pt.Scope, "error", err.Error())
			}
		}
		if err := os.RemoveAll(pt.res.Dir); err != nil {
			log.Warn("could not remove downloaded files", "dir", pt.res.Dir, "error", err.Error())
		}
	}
	return sum, nil
}

// exports are the exports of the run: Exports, or the one Request,
// Matches and ScopeName describe; each with its watermark scope (an
// export that names none has the scope of its request: group/<id>,
// patient, system).
func (p Pipeline) exports() []RosterRun {
	if len(p.Exports) == 0 {
		return []RosterRun{{Request: p.Request, Matches: p.Matches, Scope: p.scope()}}
	}
	runs := slices.Clone(p.Exports)
	for i := range runs {
		if runs[i].Scope == "" {
			runs[i].Scope = Scope(runs[i].Request)
		}
	}
	return runs
}

// runsScope is the scope of a run's record: its one export's, or
// "roster (N exports)" for several (each export's watermark keeps its
// own scope).
func runsScope(runs []RosterRun) string {
	if len(runs) == 1 {
		return runs[0].Scope
	}
	return fmt.Sprintf("roster (%d exports)", len(runs))
}

// exportsAtOnce bounds the exports of one run that go at once (a roster
// spread over several); the client's rate limit bounds their requests.
const exportsAtOnce = 4

// part is one export of a run, downloaded: what load needs of it.
type part struct {
	RosterRun // Request.Since as the export ran
	res       *extract.Result
	// prefix is res.Dir relative to the folder the run's files are named
	// from ("" for a run of one export: its own folder).
	prefix string
	// members are the values of the member columns (memberColumns) its
	// files hold, and patients the ids of the Patients they carry, kept
	// for a run of several exports (nil otherwise): its back-fill asks
	// each export for its own new members, and a match that names no
	// patient links the Patients of its own export only.
	mu       sync.Mutex
	members  map[string]bool
	patients map[string]bool
}

// sink is where the files of the export are staged: the loader, through
// a memberSink for a run of several exports.
func (pt *part) sink(loader load.Loader, views []*transform.View) transform.Sink {
	if pt.members == nil {
		return sink{loader}
	}
	return memberSink{sink{loader}, memberColumns(views), pt}
}

// matches are the export's Payer-to-Payer matches to record. In a run of
// several exports, a match that names no patient (a group of one matched
// member: every Patient its export carries is that member) names each
// Patient of its own export instead, since the run carries others' too.
func (pt *part) matches() []load.MemberMatch {
	if pt.patients == nil {
		return pt.Matches
	}
	var out []load.MemberMatch
	for _, m := range pt.Matches {
		if m.PatientID != "" {
			out = append(out, m)
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(pt.patients)) {
			m.PatientID = id
			out = append(out, m)
		}
	}
	return out
}

// exportAll runs the exports of runs, up to exportsAtOnce at a time, into
// their job directories. When one fails the others still finish, so that
// a rerun resumes them; the first failure (in the order of runs) is
// returned, the others logged.
func (p Pipeline) exportAll(ctx context.Context, log *slog.Logger, runs []RosterRun) ([]*part, error) {
	parts := make([]*part, len(runs))
	errs := make([]error, len(runs))
	var g errgroup.Group // no shared context: a failure stops no other export
	g.SetLimit(exportsAtOnce)
	for i, r := range runs {
		parts[i] = &part{RosterRun: r}
		g.Go(func() error {
			parts[i].res, errs[i] = p.export(p.exportContext(ctx, i, len(runs)), log, r)
			return nil
		})
	}
	g.Wait()
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if len(runs) > 1 {
			err = fmt.Errorf("export of %s (%d of %d): %w", runs[i].Scope, i+1, len(runs), err)
		}
		if first == nil {
			first = err
		} else {
			log.Warn("another export of the run failed too", "scope", runs[i].Scope, "error", err.Error())
		}
	}
	if first != nil {
		return nil, first
	}
	if len(parts) > 1 {
		root := p.jobRoot()
		for _, pt := range parts {
			rel, err := filepath.Rel(root, pt.res.Dir)
			if err != nil {
				return nil, err
			}
			pt.prefix, pt.members, pt.patients = rel, map[string]bool{}, map[string]bool{}
		}
	}
	return parts, nil
}

// export runs the export of r into its job directory.
func (p Pipeline) export(ctx context.Context, log *slog.Logger, r RosterRun) (*extract.Result, error) {
	dir := p.jobDir(r.Request)
	log.Info("export starting", "scope", r.Scope, "types", strings.Join(r.Request.Types, ","))
	res, err := p.Client.Export(ctx, r.Request, dir)
	if errors.Is(err, extract.ErrExportExpired) {
		// The server dropped the files (410) before we had them all: the
		// job is useless, a new export is the only way forward.
		log.Warn("export files expired on the server; starting a new export", "scope", r.Scope)
		if err := extract.ResetJob(dir); err != nil {
			return nil, err
		}
		res, err = p.Client.Export(ctx, r.Request, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return res, nil
}

// root is the folder the names of the run's files are relative to: the
// one export's folder, or the source's folder of jobs.
func (p Pipeline) root(parts []*part) string {
	if len(parts) == 1 {
		return parts[0].res.Dir
	}
	return p.jobRoot()
}

// load transforms the downloaded output files of the run's exports and
// commits them, in one transaction, into the warehouse w, or when w is
// nil into the warehouse it opens.
func (p Pipeline) load(ctx context.Context, log *slog.Logger, parts []*part, sum *Summary, started time.Time, w load.Warehouse) error {
	if w == nil {
		var err error
		if w, err = p.openWarehouse(ctx, false); err != nil {
			return err
		}
		defer w.Close()
	}

	tables, err := Tables(p.Views)
	if err != nil {
		return err
	}
	// A warehouse of an earlier release is converted on first use, in one
	// transaction, before anything of this run touches it.
	if w.Version() < load.SchemaVersion {
		log.Info("upgrading the warehouse to the current layout", "from", w.Version(), "to", load.SchemaVersion)
		if err := w.Upgrade(ctx, tables); err != nil {
			return err
		}
	}
	root := p.root(parts)
	var files []extract.File
	owner := map[string]*part{} // file name -> its export, for a run of several
	for _, pt := range parts {
		sum.TransactionTime = earliest(sum.TransactionTime, pt.res.Manifest.TransactionTime)
		sum.ExportErrors = sum.ExportErrors.Merge(pt.res.Errors)
		for _, r := range pt.res.Refused {
			if !slices.Contains(sum.RefusedParameters, r) {
				sum.RefusedParameters = append(sum.RefusedParameters, r)
			}
		}
		sum.FilteredOut += pt.res.FilteredOut
		for _, f := range pt.res.Files {
			if f.Kind == extract.KindOutput {
				f.Name = filepath.Join(pt.prefix, f.Name)
				files = append(files, f)
				owner[f.Name] = pt
			}
		}
	}
	// One budget of workers: files in parallel times workers per file.
	_, perFile := workerSplit(p.Workers, len(files))
	engine, err := transform.NewEngine(p.Views, transform.Options{BatchRows: p.BatchRows, Workers: perFile})
	if err != nil {
		return err
	}
	loader, err := w.Begin(ctx, p.Source, tables)
	if err != nil {
		return err
	}
	defer loader.Rollback(context.WithoutCancel(ctx))

	t0 := p.Now()
	sum.Files = len(files)
	st, err := transformFiles(ctx, engine, root, files, func(f extract.File) transform.Sink {
		return owner[f.Name].sink(loader, p.Views)
	}, p.Workers)
	if err != nil {
		return err
	}
	sum.Lines = st.Lines
	for _, pt := range parts {
		for _, f := range pt.res.Files {
			if f.Kind != extract.KindDeleted {
				continue
			}
			ts, err := extract.ReadDeleted(filepath.Join(pt.res.Dir, f.Name))
			if err != nil {
				return err
			}
			lts := make([]load.Tombstone, len(ts))
			for i, t := range ts {
				lts[i] = load.Tombstone(t)
			}
			if err := loader.Delete(ctx, lts); err != nil {
				return err
			}
		}
	}
	// The transform's garbage goes back to the system before DuckDB's
	// share of the run grows: with GOGC at 400 it was still mapped, up to
	// a few hundred MB, when the commit's memory came on top.
	debug.FreeOSMemory()
	if err := p.backfillAll(ctx, log, loader, engine, root, parts, sum); err != nil {
		return err
	}
	if err := restageDuplicates(ctx, log, loader, engine, root); err != nil {
		return err
	}
	for _, pt := range parts {
		if err := loader.MemberMatches(ctx, pt.matches()); err != nil {
			return err
		}
	}
	sum.Timings["transform"] = p.Now().Sub(t0).Seconds()
	p.observe(StageTransformed)
	if err := ctx.Err(); err != nil {
		return err
	}
	run := p.runRecord(parts, sum, started)
	if n := loader.Rejects(); p.MaxRejects != nil && n > *p.MaxRejects {
		sum.Rejects = n
		if err := loader.CommitRejected(ctx, run); err != nil {
			return err
		}
		sum.Status = StatusRejected
		return fmt.Errorf("%d lines or values rejected, more than the limit of %d: nothing was committed; see fhirlake_rejects for run %s: %w",
			n, *p.MaxRejects, sum.RunID, ErrTooManyRejects)
	}

	// A lake that prepares its publish while the warehouse commits
	// (load.Prefetcher) is opened now, and given the changed resources
	// as soon as the commit knows them. One that does not open is
	// opened again, and its error reported, after the commit.
	var lake load.Lake
	if p.Lake != "" && run.Changes == load.ChangesByKey {
		if lk, err := p.openLake(ctx); err == nil {
			defer lk.Close()
			lake = lk
			if pf, ok := lk.(load.Prefetcher); ok {
				run.Decided = func(keys map[string][]string) { pf.Prefetch(ctx, run.Source, keys, tables) }
			}
		}
	}
	t0 = p.Now()
	ls, err := loader.Commit(ctx, run)
	if err != nil {
		return err
	}
	sum.Resources, sum.Rejects, sum.Deleted, sum.Rows = ls.Resources, ls.Rejects, ls.Deleted, ls.Rows
	sum.SkippedOlder, sum.Unchanged, sum.PersonConflicts, sum.Status = ls.SkippedOlder, ls.Unchanged, ls.PersonConflicts, StatusCommitted
	if !run.TransactionTime.IsZero() {
		sum.Watermark = run.WatermarkTypes // without a transaction time none moves
	}
	if len(parts) > 1 {
		for _, e := range run.Parts {
			ps := ExportSummary{Scope: e.Scope, TransactionTime: e.TransactionTime}
			if !e.Since.IsZero() {
				ps.Since = &e.Since
			}
			if !e.TransactionTime.IsZero() {
				ps.Watermark = e.WatermarkTypes
			}
			sum.Exports = append(sum.Exports, ps)
		}
	}
	if ls.PersonConflicts > 0 {
		log.Warn("patients with conflicting identifiers are not linked to other sources' records; see fhirlake_person_conflicts", "patients", ls.PersonConflicts)
	}
	p.observe(StageCommitted)
	log.Info("run committed", "exports", len(parts), "resources", ls.Resources, "rejects", ls.Rejects, "deleted", ls.Deleted, "rows", rowsText(sum.Rows))
	if p.SQL != nil {
		for _, warn := range w.ApplySQL(ctx, p.SQL) {
			log.Warn("analytics view not created", "error", warn.Error())
		}
	}
	if p.Lake != "" {
		// Only this source's partitions the run touched are rewritten; the
		// lake itself notices that it lags the warehouse (a crash after an
		// earlier commit, a new directory) and rewrites it whole.
		if err := p.publish(ctx, lake, w, tables, ls.Changes, sum); err != nil {
			if errors.Is(err, load.ErrLakeMoved) || errors.Is(err, load.ErrLakeMismatch) {
				// A rerun fails the same way: the error says what to change.
				return fmt.Errorf("write lake (the warehouse is committed): %w", err)
			}
			return fmt.Errorf("write lake (the warehouse is committed; rerun to refresh the lake): %w", err)
		}
		p.observe(StageLake)
	}
	sum.Timings["load"] = p.Now().Sub(t0).Seconds()
	if !p.NoCompact {
		p.compact(ctx, w, sum, log)
	}
	return nil
}

// compact reclaims the warehouse space of replaced rows where enough has
// piled up (see load.Warehouse.Compact). The run is committed and its
// lake written by then, so a failure is a warning: the warehouse is as
// it was, and the next run tries again.
func (p Pipeline) compact(ctx context.Context, w load.Warehouse, sum *Summary, log *slog.Logger) {
	t0 := p.Now()
	done, err := w.Compact(ctx, false)
	for _, c := range done.Tables {
		sum.Compacted = append(sum.Compacted, c.Table)
		log.Info("warehouse table compacted", "table", c.Table, "rows", c.Rows, "deleted_rows", c.Deleted)
	}
	if done.Rewritten {
		sum.Timings["compact"] = p.Now().Sub(t0).Seconds()
		log.Info("warehouse compacted", "bytes_before", done.Before, "bytes_after", done.After)
	}
	if err != nil {
		log.Warn("warehouse not compacted (the run is committed; the next run tries again)", "error", err.Error())
	}
}

// runRecord is the run's bookkeeping record: for one export its scope,
// window and watermark; for several, each export as a load.Part, and the
// record's own Since (zero when any export was full) and TransactionTime
// the earliest of theirs, its WatermarkTypes those of the exports that
// have a transaction time.
func (p Pipeline) runRecord(parts []*part, sum *Summary, started time.Time) load.Run {
	run := load.Run{ID: sum.RunID, Source: sum.Source, Scope: sum.Scope, Started: started,
		TransactionTime: sum.TransactionTime, Person: p.Person, ExportIssues: exportIssues(sum.ExportErrors),
		Changes: p.changeNeed()}
	if sum.Since != nil {
		run.Since = *sum.Since
	}
	for _, pt := range parts {
		e := load.Part{Scope: pt.Scope, Since: pt.Request.Since, TransactionTime: pt.res.Manifest.TransactionTime,
			WatermarkTypes: p.advanceable(pt.Request.Types, pt.res.Errors), Job: JobID(pt.res.StatusURL)}
		if !e.TransactionTime.IsZero() {
			run.WatermarkTypes = append(run.WatermarkTypes, e.WatermarkTypes...)
		}
		run.Parts = append(run.Parts, e)
	}
	if len(parts) == 1 {
		e := run.Parts[0]
		run.WatermarkTypes, run.Job, run.Parts = e.WatermarkTypes, e.Job, nil
	} else {
		run.WatermarkTypes = slices.Compact(slices.Sorted(slices.Values(run.WatermarkTypes)))
	}
	return run
}

// runsSince is the _since of a run's record: the earliest of its
// exports', or nil when any of them was full.
func runsSince(runs []RosterRun) *time.Time {
	var since time.Time
	for _, r := range runs {
		if r.Request.Since.IsZero() {
			return nil
		}
		since = earliest(since, r.Request.Since)
	}
	if since.IsZero() {
		return nil
	}
	return &since
}

// earliest is the earlier of two times, a zero one not counting.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// memberSink records, for a run of several exports, the values of the
// member columns (memberColumns) that one export's files hold and the
// Patients they carry, as it passes their batches on (see part).
type memberSink struct {
	sink
	columns []memberColumn
	part    *part
}

// patientsOf records the ids of the Patients in a batch of the resource
// index (load.ResourcesSchema).
func (s memberSink) patientsOf(rec arrow.RecordBatch) {
	types, ok1 := rec.Column(0).(*array.String)
	ids, ok2 := rec.Column(1).(*array.String)
	if !ok1 || !ok2 {
		return
	}
	s.part.mu.Lock()
	defer s.part.mu.Unlock()
	for i := range types.Len() {
		if types.Value(i) == "Patient" {
			s.part.patients[strings.Clone(ids.Value(i))] = true // Value shares the batch's memory
		}
	}
}

func (s memberSink) WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error {
	if table == transform.ResourcesTable {
		s.patientsOf(rec)
	}
	for _, c := range s.columns {
		if c.table != table {
			continue
		}
		idx := rec.Schema().FieldIndices(c.column)
		if len(idx) == 0 {
			continue
		}
		col := rec.Column(idx[0])
		s.part.mu.Lock()
		for i := range col.Len() {
			if col.IsValid(i) {
				s.part.members[strings.Clone(col.ValueStr(i))] = true
			}
		}
		s.part.mu.Unlock()
	}
	return s.sink.WriteBatch(ctx, table, rec)
}

// exportIssues converts the export's error summary for the run record.
func exportIssues(s extract.ErrorSummary) []load.ExportIssue {
	out := make([]load.ExportIssue, 0, len(s.ByType))
	for _, c := range s.ByType {
		out = append(out, load.ExportIssue{ResourceType: c.ResourceType, Severity: c.Severity, Issues: c.Issues, Codes: c.Codes})
	}
	return out
}

// openWarehouse opens the warehouse: with OpenWarehouse when set, else
// with load's registered driver.
func (p Pipeline) openWarehouse(ctx context.Context, readOnly bool) (load.Warehouse, error) {
	open := func() (load.Warehouse, error) {
		if p.OpenWarehouse != nil {
			return p.OpenWarehouse(ctx, p.Warehouse, readOnly)
		}
		if readOnly {
			return load.OpenReadOnly(ctx, p.Warehouse)
		}
		return load.Open(ctx, p.Warehouse)
	}
	w, err := open()
	wait := cmp.Or(p.LockWait, DefaultLockWait)
	if !errors.Is(err, load.ErrInUse) || wait < 0 {
		return w, err
	}
	// A reader has the file open: readers come and go, so wait a while
	// before giving up (exit 7).
	if p.Log != nil {
		p.Log.Warn("the warehouse is open in another process; waiting for it to close", "warehouse", p.Warehouse, "up_to", wait.String())
	}
	deadline := time.Now().Add(wait)
	for {
		step := min(lockRetryEvery, time.Until(deadline))
		if step <= 0 {
			return nil, fmt.Errorf("%w (waited %s for it: --lock-wait)", err, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(step):
		}
		if w, err = open(); !errors.Is(err, load.ErrInUse) {
			return w, err
		}
	}
}

// DefaultLockWait is how long a run waits for a reader to close the
// warehouse (Pipeline.LockWait).
const DefaultLockWait = 2 * time.Minute

// lockRetryEvery is how often a waiting run tries the warehouse again.
var lockRetryEvery = time.Second

// warehouseExists reports whether there is a warehouse to read.
func (p Pipeline) warehouseExists() bool {
	if p.OpenWarehouse != nil {
		return true
	}
	_, err := os.Stat(p.Warehouse)
	return err == nil
}

// changeNeed is what the run's lake reads of a commit's changes
// (load.Run.Changes): nothing without a lake.
func (p Pipeline) changeNeed() load.ChangeNeed {
	if p.Lake == "" {
		return load.ChangesNone
	}
	return load.LakeNeeds(p.lakeFormat())
}

// lakeFormat is the run's lake format, "parquet" unless set.
func (p Pipeline) lakeFormat() string {
	if p.LakeFormat == "" {
		return "parquet"
	}
	return p.LakeFormat
}

// openLake opens the run's lake target.
func (p Pipeline) openLake(ctx context.Context) (load.Lake, error) {
	opts := p.LakeOptions
	opts.Warehouse = p.Warehouse
	return load.OpenLake(ctx, p.lakeFormat(), p.Lake, opts)
}

// publish makes the lake mirror the committed warehouse, through lake
// when it is open already.
func (p Pipeline) publish(ctx context.Context, lake load.Lake, w load.Warehouse, tables []load.Table, changes *load.Changes, sum *Summary) error {
	if lake == nil {
		var err error
		if lake, err = p.openLake(ctx); err != nil {
			return err
		}
		defer lake.Close()
	}
	defer thriftyGC()()
	// A publish of every row, or of partitions (a run too large to name
	// its resources), copies whole tables: DuckDB's cache can be smaller.
	if l, ok := w.(interface {
		LimitMemoryForCopy(context.Context) (func(), error)
	}); ok && (changes == nil || changes.Keys == nil) {
		restore, err := l.LimitMemoryForCopy(ctx)
		if err != nil {
			return err
		}
		defer restore()
	}
	err := lake.Publish(ctx, w, load.Identity{Path: w.Path(), ID: w.ID()}, tables, changes)
	if r, ok := lake.(interface{ CommitRetries() int64 }); ok {
		sum.LakeCommitRetries = r.CommitRetries()
	}
	return err
}

// publishGC is Go's GC target (GOGC) while a lake publishes, when the
// process runs with a higher one (the CLI runs the transform at 400). An
// Iceberg lake holds a Parquet row group per partition open at once, so
// the live heap is large and a high target multiplies it: a full load of
// a 10 GB export peaked at 1.37 GB of RSS, at 1.03 GB with 100 (101.7 s
// and 93.5 s; one run each).
const publishGC = 100

// gcTarget counts the publishes under way and keeps the target to go
// back to when the last ends (sources may publish at once).
var gcTarget struct {
	sync.Mutex
	publishing int
	was        int
}

// thriftyGC lowers Go's GC target to publishGC, unless it is lower
// already or off, and returns the function that puts it back.
func thriftyGC() (restore func()) {
	gcTarget.Lock()
	defer gcTarget.Unlock()
	if gcTarget.publishing == 0 {
		gcTarget.was = debug.SetGCPercent(publishGC)
		if gcTarget.was < publishGC {
			debug.SetGCPercent(gcTarget.was) // the user's GOGC, lower or off: kept
		}
	}
	gcTarget.publishing++
	return func() {
		gcTarget.Lock()
		defer gcTarget.Unlock()
		if gcTarget.publishing--; gcTarget.publishing == 0 {
			debug.SetGCPercent(gcTarget.was)
		}
	}
}

// JobID identifies an export job in fhirlake_runs.job: a digest of its
// status URL (which names the job on the server and may carry a token in
// its query, so it is not stored itself). "" for no job.
func JobID(statusURL string) string {
	if statusURL == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(statusURL))
	return hex.EncodeToString(sum[:16])
}

// sweepCommittedJobs removes the job directories of this source whose
// export a run already committed (or recorded as rejected): a run killed
// between its commit and its clean-up leaves one. Each job's server export
// is deleted too, unless KeepServerJob. Failures are logged, not fatal:
// the next run tries again.
func (p Pipeline) sweepCommittedJobs(ctx context.Context, log *slog.Logger) {
	root := p.jobRoot()
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	dirs := map[string]string{} // job id -> directory
	status := map[string]string{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		job, err := extract.LoadJob(dir)
		if err != nil || job == nil || job.StatusURL == "" {
			continue
		}
		id := JobID(job.StatusURL)
		dirs[id], status[id] = dir, job.StatusURL
	}
	if len(dirs) == 0 {
		return
	}
	if !p.warehouseExists() {
		return
	}
	w, err := p.openWarehouse(ctx, true)
	if err != nil {
		log.Warn("could not check for committed jobs left behind", "error", err.Error())
		return
	}
	done, err := w.CommittedJobs(ctx, slices.Collect(maps.Keys(dirs)))
	w.Close()
	if err != nil {
		log.Warn("could not check for committed jobs left behind", "error", err.Error())
		return
	}
	for id := range done {
		log.Info("removing the job of a run committed earlier but not cleaned up", "job", id)
		if !p.KeepServerJob && p.Client != nil {
			if err := p.Client.Cancel(ctx, status[id]); err != nil {
				log.Warn("could not delete the export job on the server", "job", id, "error", err.Error())
			}
		}
		if err := os.RemoveAll(dirs[id]); err != nil {
			log.Warn("could not remove the downloaded files of a committed job", "job", id, "error", err.Error())
		}
	}
}

// watermarkTypes are the resource types a run's watermark covers: the
// requested types, or else every type a view reads.
func (p Pipeline) watermarkTypes(requested []string) []string {
	if len(requested) > 0 {
		return slices.Sorted(slices.Values(requested))
	}
	set := map[string]bool{}
	for _, v := range p.Views {
		set[v.Resource()] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// preflight checks, before anything is exported, that the run may write
// its warehouse and lake (the source name is valid, the warehouse is not
// of a newer release, the lake mirrors this warehouse and no other), and
// reads the stored watermark of the source and each export's scope: the
// time for each of runs, zero where there is none.
func (p Pipeline) preflight(ctx context.Context, log *slog.Logger, runs []RosterRun) ([]time.Time, error) {
	marks, w, err := p.preflightOpen(ctx, log, runs)
	if w != nil {
		w.Close()
	}
	return marks, err
}

// preflightOpen is preflight that leaves the warehouse open, for a run
// that loads right away (nil when it does not exist yet); the caller
// closes it. Opening a 10 GB export's warehouse took 0.04-0.06 s.
func (p Pipeline) preflightOpen(ctx context.Context, log *slog.Logger, runs []RosterRun) (_ []time.Time, w load.Warehouse, err error) {
	marks := make([]time.Time, len(runs))
	if err := load.CheckSource(p.Source); err != nil {
		return nil, nil, err
	}
	id := ""
	// On an error the warehouse opened here is closed and not returned
	// (the error returns name it only so that this sees it).
	defer func() {
		if err != nil && w != nil {
			w.Close()
			w = nil
		}
	}()
	if p.warehouseExists() {
		if w, err = p.openWarehouse(ctx, false); err != nil {
			return nil, nil, err
		}
		id = w.ID()
	}
	if p.Lake != "" {
		if dir, local := localPath(p.Lake); local {
			if err := private.CheckWritable(dir); err != nil {
				return nil, w, fmt.Errorf("lake %s %w: %w", p.Lake, ErrNotWritable, err)
			}
		}
		lake, err := p.openLake(ctx)
		if err != nil {
			return nil, w, err
		}
		err = lake.Check(ctx, p.Warehouse, id, p.Source)
		if err == nil {
			w, err = p.restoreStale(ctx, log, lake, w)
		}
		lake.Close()
		if err != nil {
			return nil, w, err
		}
	}
	if w == nil {
		return marks, nil, nil // a new warehouse has no watermark
	}
	// fhirlake_watermarks has the same layout in every release.
	for i, r := range runs {
		since, ok, err := w.Watermark(ctx, p.Source, r.Scope, p.watermarkTypes(r.Request.Types))
		if err != nil {
			return nil, w, err
		}
		if ok {
			marks[i] = since
		}
	}
	return marks, w, nil
}

// ErrNotWritable means a folder the run writes to (its lake) cannot be
// written: found before the export, it is a setting to fix (exit 2).
var ErrNotWritable = errors.New("cannot be written")

// localPath is the folder of a lake location on this machine's disk (a
// path or a file:// URL); local is false for object storage (s3://).
func localPath(location string) (dir string, local bool) {
	if rest, ok := strings.CutPrefix(location, "file://"); ok {
		return rest, true
	}
	return location, !strings.Contains(location, "://")
}

// advanceable drops from the watermark the types the server reported
// errors for; errors that name no type hold every type back.
func (p Pipeline) advanceable(requested []string, errs extract.ErrorSummary) []string {
	types := p.watermarkTypes(requested)
	if errs.Errors == 0 {
		return types
	}
	if len(errs.Types) == 0 {
		return nil
	}
	var out []string
	for _, t := range types {
		if !slices.Contains(errs.Types, t) {
			out = append(out, t)
		}
	}
	return out
}

// primaryKey is id for a parent table, and for a child table its resource
// key plus its index columns (idx, or names ending in _idx, from
// %rowIndex). A child view without index columns gets no constraint: its
// rows need not be unique.
func primaryKey(v *transform.View) []string {
	if v.KeyColumn() == "id" {
		return []string{"id"}
	}
	key := []string{v.KeyColumn()}
	for _, c := range v.Columns() {
		if c.Name == "idx" || strings.HasSuffix(c.Name, "_idx") {
			key = append(key, c.Name)
		}
	}
	if len(key) == 1 {
		return nil
	}
	return key
}

// codedColumns are the view's single-valued columns of FHIR type code or
// uri, whose values come from a small set whatever the export's size.
func codedColumns(v *transform.View) []string {
	var out []string
	for _, c := range v.Columns() {
		if !c.Collection && (c.Type == "code" || c.Type == "uri") && c.Name != v.KeyColumn() {
			out = append(out, c.Name)
		}
	}
	return out
}

// partitionKeyRE is what a partition key (a folder name part) may be.
var partitionKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// memberColumn is a column of Patient ids tagged transform.TagMember
// "new"; patientKey says it is the key of a view of Patient (the member
// himself, not a reference to him).
type memberColumn struct {
	table, column string
	patientKey    bool
}

// memberColumns are the columns tagged transform.TagMember "new".
func memberColumns(views []*transform.View) []memberColumn {
	var out []memberColumn
	for _, v := range views {
		for _, c := range v.Columns() {
			if c.Tags[transform.TagMember] == "new" {
				out = append(out, memberColumn{v.Name(), c.Name, v.Resource() == "Patient" && c.Name == v.KeyColumn()})
			}
		}
	}
	return out
}

// Tables describes the warehouse table of each view.
func Tables(views []*transform.View) ([]load.Table, error) {
	tables := make([]load.Table, 0, len(views))
	for _, v := range views {
		if v.KeyColumn() == "" {
			return nil, fmt.Errorf("view %s has no resource key column: add a column named id, or one with path getResourceKey()", v.Name())
		}
		if v.Name() == load.PersonTable {
			return nil, fmt.Errorf("view %s: the table name is reserved for the person crosswalk; rename the view", v.Name())
		}
		if v.Schema().FieldIndices(load.DataSource) != nil {
			return nil, fmt.Errorf("view %s: column %s is reserved (every table gets it: the source of each row); rename the column", v.Name(), load.DataSource)
		}
		t := load.Table{Name: v.Name(), Resource: v.Resource(), Key: v.KeyColumn(), Schema: v.Schema(), PrimaryKey: primaryKey(v), Coded: codedColumns(v)}
		for i, c := range v.Columns() {
			key, ok := c.Tags[transform.TagPartition]
			if !ok {
				continue
			}
			if t.Partition != nil {
				return nil, fmt.Errorf("view %s: two columns carry the tag %s; a table has one partition", v.Name(), transform.TagPartition)
			}
			switch v.Schema().Field(i).Type.ID() {
			case arrow.DATE32, arrow.TIMESTAMP:
			default:
				return nil, fmt.Errorf("view %s: column %s carries the tag %s but is not a date or dateTime", v.Name(), c.Name, transform.TagPartition)
			}
			if !partitionKeyRE.MatchString(key) || key == load.DataSource || v.Schema().FieldIndices(key) != nil {
				return nil, fmt.Errorf("view %s: %s %q: the partition key must be a new snake_case name", v.Name(), transform.TagPartition, key)
			}
			t.Partition = &load.Partition{Column: c.Name, Name: key}
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// sink adapts the loader to transform.Sink. It reports the rows it stages
// to the Progress of ctx (see runContext).
type sink struct{ l load.Loader }

var _ transform.Sink = sink{}

func (s sink) WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error {
	if err := s.l.WriteBatch(ctx, table, rec); err != nil {
		return err
	}
	if n := rec.NumRows(); n > 0 && table != transform.ResourcesTable {
		progressFrom(ctx).Rows(table, n)
	}
	return nil
}

func (s sink) Reject(ctx context.Context, r transform.Reject) error {
	return s.l.Reject(ctx, load.Reject(r))
}

// workerSplit divides a budget of workers (the CPUs) between files in
// parallel and workers per file (the engine's blocks of one file), so
// that their product never exceeds the budget: one big file gets every
// worker, many files get one each.
func workerSplit(budget, files int) (fileWorkers, perFile int) {
	budget = max(1, budget)
	fileWorkers = min(budget, max(1, files))
	return fileWorkers, max(1, budget/fileWorkers)
}

// transformFiles runs the engine over files (names relative to root, which
// is also how rejects and the resource index name them; a file's Type,
// when set, is the resourceType its manifest declares) with a pool of
// workers, into the sink sinkFor gives each file.
func transformFiles(ctx context.Context, e *transform.Engine, root string, files []extract.File, sinkFor func(extract.File) transform.Sink, workers int) (transform.Stats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		total = transform.Stats{Rows: map[string]int64{}}
		wg    sync.WaitGroup
		next  = make(chan extract.File)
	)
	fileWorkers, _ := workerSplit(workers, len(files))
	for range fileWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range next {
				st, err := transformFile(ctx, e, root, f, sinkFor(f))
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				total.Lines += st.Lines
				total.Resources += st.Resources
				total.Rejected += st.Rejected
				for k, v := range st.Rows {
					total.Rows[k] += v
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return total, context.Cause(ctx)
}

func transformFile(ctx context.Context, e *transform.Engine, root string, file extract.File, s transform.Sink) (transform.Stats, error) {
	// The engine recognises gzip by its magic bytes, whatever the name.
	f, err := os.Open(filepath.Join(root, file.Name))
	if err != nil {
		return transform.Stats{}, fmt.Errorf("transform %s: %w", file.Name, err)
	}
	defer f.Close()
	st, err := e.TransformAs(ctx, file.Name, file.Type, f, s)
	if err != nil {
		return st, fmt.Errorf("transform %s: %w", file.Name, err)
	}
	return st, nil
}

func newRunID(t time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// rowsText is the rows staged per table for a log line, "coverage=10
// patient=5", sorted by table.
func rowsText(rows map[string]int64) string {
	parts := make([]string, 0, len(rows))
	for _, t := range slices.Sorted(maps.Keys(rows)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, rows[t]))
	}
	return strings.Join(parts, " ")
}
