package load

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// SchemaVersion is the warehouse layout this release writes. Version 2
// keys every row by its source: data tables start with data_source, and
// the bookkeeping of resources, deletes and rejects carries the source.
// Version 3 records each resource's content hash in fhirlake_resources, so
// that a version loaded again unchanged is skipped.
const SchemaVersion = 3

// DataSource is the column every data table starts with: the name of the
// source (payer, tenant) whose run loaded the row. It is the Tuva
// Project's column name. A row's identity is (data_source, resource type,
// id): ids are unique only within one server.
const DataSource = "data_source"

// Table describes one warehouse table fed by a view.
type Table struct {
	// Name is the table name (the view name).
	Name string
	// Resource is the FHIR resource type whose rows the table holds.
	Resource string
	// Key is the column that holds the id of the resource a row came from.
	// All rows of a resource are replaced together when it is reloaded.
	Key string
	// Schema is the Arrow schema of the batches.
	Schema *arrow.Schema
	// Partition, when set, splits the table's Parquet lake into Hive-style
	// partitions by the year of a date or timestamp column.
	Partition *Partition
	// PrimaryKey lists the columns of the table's primary key (Key for a
	// parent table; Key plus index columns for a child table). Empty means
	// no constraint.
	PrimaryKey []string
	// Coded lists the columns whose values come from a small set (FHIR
	// code and uri columns: codes bound to value sets, code systems). The
	// warehouse stores them dictionary-encoded without weighing the other
	// encodings, which makes a load's checkpoint cheaper and the file no
	// bigger (issue 15).
	Coded []string
}

// Partition names the column whose year partitions a table in the lake.
type Partition struct {
	// Column is a DATE or TIMESTAMPTZ column of the table.
	Column string
	// Name is the Hive partition key, e.g. service_year, giving folders
	// lake/<table>/service_year=2024/.
	Name string
}

// NullPartition is the partition value of rows whose partition column is
// null.
const NullPartition = "unknown"

// Resources is the name of the batch stream that lists every resource the
// run carried, with the columns of ResourcesSchema. It decides which rows
// are replaced (all rows of a resource, even when it now yields none for a
// table) and which version of a resource wins.
const Resources = "_resources"

// ResourcesSchema is the schema of the Resources stream. content_hash
// (see transform.ResourcesSchema) may be null: such a version is never
// taken for one the warehouse holds.
var ResourcesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "resource_type", Type: arrow.BinaryTypes.String},
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: "meta_last_updated", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "version_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "file", Type: arrow.BinaryTypes.String},
	{Name: "line", Type: arrow.PrimitiveTypes.Int64},
	{Name: "content_hash", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

// Reject is a line or value that could not be loaded. It never holds
// resource content.
type Reject struct {
	File         string
	Line         int64
	ResourceType string
	ResourceID   string
	Column       string
	Reason       string
}

// Run is the bookkeeping record of one pipeline run.
type Run struct {
	ID              string
	Source          string
	Scope           string
	Started         time.Time
	Since           time.Time // zero when the run was a full export
	TransactionTime time.Time
	// WatermarkTypes are the resource types whose watermark moves to
	// TransactionTime when the run commits (never backwards); empty leaves
	// the watermarks alone (e.g. the server reported errors for them).
	WatermarkTypes []string
	// Person says which identifiers link patients of different sources
	// into one person (see PersonRule).
	Person PersonRule
	// Job identifies the export the run loaded (a digest of its status
	// URL; "" for files loaded from disk), so that a later run can tell
	// that a job left on disk by a crash after the commit is done.
	Job string
	// ExportIssues summarise the export's error[] files (the server's
	// OperationOutcomes), recorded in fhirlake_export_errors.
	ExportIssues []ExportIssue
	// Changes says what Commit lists of the run's changes (Stats.Changes)
	// for the run's lake (LakeNeeds).
	Changes ChangeNeed
	// Decided, when set, is called by Commit with the Keys its Changes
	// will list, as soon as it knows them and before it changes a table;
	// not when it lists none. A lake may start on them while the
	// warehouse commits (Prefetcher). Commit waits for it, holding the
	// run: it should hand the keys over and return, not use the loader.
	Decided func(keys map[string][]string)
	// Parts, when set, are the exports of a run that loads several in
	// one commit (a roster spread over exports): each moves the watermark
	// of its own scope to its own transaction time, and each job is
	// recorded. The run's own Scope, Since, TransactionTime and
	// WatermarkTypes then describe the whole for the run record
	// (TransactionTime the earliest, which also dates the versions
	// without meta.lastUpdated), and Job is unused.
	Parts []Part
}

// ChangeNeed is what a lake reads of a run's Changes beyond which tables
// changed: the partitions that changed (Tables' values), or the changed
// resources (Keys). Finding the partitions costs two scans of each changed
// partitioned table, listing the resources a query of them all.
type ChangeNeed int

const (
	// ChangesAll lists both: the partitions, and the resources when there
	// are at most MaxChangedKeys of them. For a lake that does not say.
	ChangesAll ChangeNeed = iota
	// ChangesByPartition lists the partitions only: a lake that rewrites
	// partitions (the Hive-style lake).
	ChangesByPartition
	// ChangesByKey lists the resources when there are at most
	// MaxChangedKeys, and the partitions only when it does not: a lake
	// that changes rows by key, and rewrites partitions past the bound or
	// whole where it cannot change rows (the Iceberg lake).
	ChangesByKey
	// ChangesNone lists neither: no lake reads them (a run without one).
	ChangesNone
)

// Partitions says whether a run that changed n resources (replaced or
// deleted) lists the partitions it changed; a run that does not maps
// every changed table to nil, the whole source's rows.
func (c ChangeNeed) Partitions(n int64) bool {
	switch c {
	case ChangesNone:
		return false
	case ChangesByKey:
		return !keysListed(n)
	}
	return true
}

// Keys says whether a run that changed n resources lists them in
// Changes.Keys.
func (c ChangeNeed) Keys(n int64) bool {
	return (c == ChangesAll || c == ChangesByKey) && keysListed(n)
}

// keysListed says whether n changed resources can be listed: at most
// MaxChangedKeys.
func keysListed(n int64) bool { return n > 0 && n <= MaxChangedKeys }

// Part is one export of a run (see Run.Parts).
type Part struct {
	Scope           string
	Since           time.Time // zero for a full export
	TransactionTime time.Time
	WatermarkTypes  []string
	Job             string
}

// Exports are the run's parts: Parts, or the one export the run's own
// fields describe.
func (r Run) Exports() []Part {
	if len(r.Parts) > 0 {
		return r.Parts
	}
	return []Part{{Scope: r.Scope, Since: r.Since, TransactionTime: r.TransactionTime, WatermarkTypes: r.WatermarkTypes, Job: r.Job}}
}

// Jobs are the jobs of the run's exports, without the empty ones.
func (r Run) Jobs() []string {
	var out []string
	for _, p := range r.Exports() {
		if p.Job != "" {
			out = append(out, p.Job)
		}
	}
	return out
}

// JobsText is how the run record keeps the jobs of a run
// (fhirlake_runs.job): separated by single spaces (job ids are hex).
func JobsText(jobs []string) string {
	return strings.Join(jobs, " ")
}

// ExportIssue is the number of issues of one severity that name one
// resource type in an export's error files.
type ExportIssue struct {
	ResourceType string // "" when the issues name none
	Severity     string
	Issues       int64
	Codes        []string // the FHIR IssueType codes seen
}

// Tombstone is a resource deleted at the source.
type Tombstone struct {
	ResourceType string
	ID           string
}

// Stats counts what a committed run changed.
type Stats struct {
	Resources int64
	Rejects   int64
	// Deleted is the number of tombstones applied.
	Deleted int64
	// SkippedOlder counts resources not loaded because the warehouse already
	// holds a newer version (meta.lastUpdated, then versionId).
	SkippedOlder int64
	// Unchanged counts resources not loaded because the warehouse already
	// holds the same version with the same content hash: their rows would
	// be the ones it has.
	Unchanged int64
	// Rows is the number of rows staged per table.
	Rows map[string]int64
	// Changes says which lake files the run made stale, for WriteLake.
	Changes *Changes
	// PersonConflicts is the number of patients whose strong identifiers
	// conflict (see fhirlake_person_conflicts), after the run; 0 when the
	// run changed no patient, identifier or member match (it did not link
	// persons).
	PersonConflicts int64
}

// Changes is what a committed run changed, as WriteLake needs it: only
// rows of the run's Source changed, and of those only the tables named,
// in the partitions listed.
type Changes struct {
	// Source is the run's source: no other source's rows changed.
	Source string
	// Tables lists, per table whose rows the run changed, the lake
	// partitions (year values, or NullPartition) that changed: before and
	// after values both count. An unpartitioned table maps to nil, and so
	// does every table when the run's ChangeNeed does not list partitions
	// (nil: the whole source's rows).
	Tables map[string][]string
	// Person is set when the run changed the person crosswalk, which
	// spans sources (PersonTable): a patient gained, lost or changed its
	// person. A run that changed patients but no one's person leaves it
	// unset, and a lake leaves its crosswalk as it is.
	Person bool
	// Index is set when the run changed the version index
	// (IndexTable): it loaded or deleted a resource.
	Index bool
	// RunID is the run's id, which lakes record with what they publish.
	RunID string
	// Keys lists, per resource type, the ids of the resources of Source
	// the run replaced or deleted (their rows in the lake are stale), so
	// that a lake can change just those rows (RecordsOf gives the new
	// ones). It is nil when the run changed more than MaxChangedKeys
	// resources (a lake then rewrites the changed partitions), or when
	// the run's ChangeNeed does not list them.
	Keys map[string][]string
	// Appended counts, per table of Tables, the rows the run inserted
	// into it: all the rows of Keys' resources the table holds after the
	// run (RecordsOf's appended). Under IndexTable it counts the versions
	// the run loaded into the version index (RunIndex's appended).
	Appended map[string]int64
}

// MaxChangedKeys bounds Changes.Keys, which holds memory in proportion
// to the run: about 75 bytes a resource, and a lake's merge-on-read
// delete 8 bytes a deleted row (an EOB of the generated exports has 24
// rows in its tables, 18 of them in eob_item_adjudication), about 100 MB
// at the bound. Beyond it a lake rewrites the partitions the run changed,
// which costs as much as a whole publish when the changes span every
// year: a 3% incremental run of a 10 GB export (83,000 resources) took
// 39.5 s and 1.32 GB that way with a bound of 50,000, against 11.7 s and
// 703 MB naming its resources. With delete files written in batches,
// merge-on-read won up to a fifth of that export: a 14% run (392,000
// resources) took 46.5 s and 843 MB (the partition rewrite, 63.7 s and
// 1.12 GB, before warehouse compaction, which took 15 s of the 46.5), a
// 20% run (549,000) 50.3 s and 873 MB against 69.9 s and 983 MB. At 33%
// (914,000) the rewrite won: 72.7 s and 1.17 GB (before warehouse
// compaction) against 88.6 s and 1.35 GB. Since the warehouse writes the
// partitions' files, the 14% run took 48.3-48.8 s and 711-728 MB
// replacing its partitions, against 42.4-46.3 s and 783-787 MB
// merge-on-read (two alternating runs each): the bound stands.
const MaxChangedKeys = 600_000

// DefaultSource is the source of runs that name none, and of rows a
// version 1 warehouse cannot attribute to a source (see Upgrade).
const DefaultSource = "default"

// sourceRE is what a source name may be: it becomes a folder of the lake
// (data_source=<name>), so nothing that could escape it or need quoting.
var sourceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// ErrBadSource means a source name cannot be used (see CheckSource).
var ErrBadSource = errors.New("bad source name")

// CheckSource validates a source name.
func CheckSource(name string) error {
	if !sourceRE.MatchString(name) {
		return fmt.Errorf("%w %q: use letters, digits, '.', '-' and '_' (at most 100), starting with a letter or digit", ErrBadSource, name)
	}
	return nil
}

// Located is a resource and the line it was read from.
type Located struct {
	ResourceType, ID string
	File             string
	Line             int64
}

// One person across sources. The same human has a Patient at each payer
// that covers them, each with the payer's own id. The person table links
// those records by strong identifiers only:
//
//   - the Medicare Beneficiary Identifier (MBISystem), which CMS assigns
//     to one beneficiary for life;
//   - the identifier systems a user configures (PersonRule.IdentifierSystems),
//     such as a state Medicaid id or an enterprise master patient index;
//   - the Payer-to-Payer match itself: the old payer's Patient that
//     $member-match returned is the roster's member, whose number at the
//     requesting payer is the roster's coverage_to_link
//     (PersonRule.RosterSystem says which of the requesting payer's
//     identifier systems holds that number).
//
// Never by name, birth date or address: those are not identifiers. An
// identifier held by two patients of one source (a data error, or a
// reused number) links nobody and is reported; so is a chain of links
// that would put two patients of one source into one person (one payer
// does not hold two records of one member in this model). Both are
// recorded in fhirlake_person_conflicts, with the patients and the
// identifier system, never the identifier's value.

// MBISystem is the identifier system of the Medicare Beneficiary
// Identifier.
const MBISystem = "http://hl7.org/fhir/sid/us-mbi"

// RosterMatchSystem stands for the requesting payer's member numbers
// (coverage_to_link) when PersonRule.RosterSystem is empty: the matches of
// one member at two old payers still link, but not to the requesting
// payer's own records.
const RosterMatchSystem = "urn:fhirlake:roster-member"

// PersonTable is the crosswalk: one row per patient of every source,
// (data_source, patient_id, person_id). The name is reserved.
const PersonTable = "person"

// PersonRule says which identifiers link records of one person.
type PersonRule struct {
	// IdentifierSystems are identifier systems, besides MBISystem, whose
	// value names one person wherever it appears.
	IdentifierSystems []string
	// RosterSystem is the identifier system of the roster's
	// coverage_to_link: the requesting payer's member numbers on its own
	// Patients. Empty: RosterMatchSystem.
	RosterSystem string
}

// Systems lists the strong identifier systems, MBISystem first.
func (r PersonRule) Systems() []string {
	out := []string{MBISystem}
	for _, s := range r.IdentifierSystems {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// RosterIdentifierSystem is RosterSystem, or RosterMatchSystem when unset.
func (r PersonRule) RosterIdentifierSystem() string {
	if r.RosterSystem != "" {
		return r.RosterSystem
	}
	return RosterMatchSystem
}

// MemberMatch records one Payer-to-Payer match of a run: the roster row's
// member numbers and the Patient it matched at the run's source.
type MemberMatch struct {
	// MemberID is the roster's member_id, the number on the old payer's
	// card that was matched.
	MemberID string
	// LinkID is the roster's coverage_to_link, the member's number at the
	// requesting payer; "" when the roster gives none (the match then
	// links to no other record).
	LinkID string
	// PatientID is the matched Patient; "" means every Patient the run
	// carries (1upHealth answers a match with a Group that holds the one
	// member, and the run exports that Group).
	PatientID string
	// GroupID is the Group the server answered with, if any.
	GroupID string
}

// ErrInUse means another process holds the warehouse file open.
var ErrInUse = errors.New("warehouse is in use by another process")

// ErrOutOfMemory means the warehouse's database ran out of the memory it
// is given for a run: the run fails the same way until the bound is raised.
var ErrOutOfMemory = errors.New("the warehouse needs more memory for this run")

// ErrNewerWarehouse means the warehouse was written by a newer release.
var ErrNewerWarehouse = errors.New("warehouse written by a newer fhirlake")

// ErrOldWarehouse means the warehouse has the layout of an earlier
// release and must be upgraded (Warehouse.Upgrade) before a load.
var ErrOldWarehouse = errors.New("warehouse has an earlier layout")

// ErrLakeMismatch means a lake mirrors another warehouse than the one a
// command writes.
var ErrLakeMismatch = errors.New("the lake mirrors another warehouse")

// ErrLakeMoved means a lake's catalog registers its tables at another
// location than the lake's: the lake was moved or copied with its
// catalog, whose entries still name the old place.
var ErrLakeMoved = errors.New("the lake's catalog registers its tables elsewhere")

// BookkeepingPrefix starts the name of every bookkeeping table.
const BookkeepingPrefix = "fhirlake_"

// RunsTable is the bookkeeping table of the run log: a row per run, never
// changed once written, so that a lake may append a run's row to what it
// holds rather than rewrite the source's.
const RunsTable = "fhirlake_runs"

// IndexTable is the bookkeeping table of the version index: the version
// of every resource the warehouse holds, by source. It is the largest
// bookkeeping table, and the one a lake may leave alone when a run did
// not change it (Changes.Index).
const IndexTable = "fhirlake_resources"
