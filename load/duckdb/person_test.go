//go:build duckdb_arrow

package duckdb

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

var (
	patientSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "family", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	identifierSchema = arrow.NewSchema([]arrow.Field{
		{Name: "patient_id", Type: arrow.BinaryTypes.String},
		{Name: "idx", Type: arrow.PrimitiveTypes.Int32},
		{Name: "system", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "value", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	personTables = []load.Table{
		{Name: "patient", Resource: "Patient", Key: "id", Schema: patientSchema, PrimaryKey: []string{"id"}},
		{Name: "patient_identifier", Resource: "Patient", Key: "patient_id", Schema: identifierSchema, PrimaryKey: []string{"patient_id", "idx"}},
	}
)

const memberSystem = "https://newpayer.example/member"

// pat is a test Patient: its id, family name and identifiers as
// system=value pairs.
type pat struct {
	id, family string
	ids        []string
}

// loadPatients commits one run of source with the patients and matches,
// each patient last updated on the first day of 2026.
func loadPatients(t *testing.T, w *Warehouse, source, runID string, rule load.PersonRule, matches []load.MemberMatch, ps ...pat) load.Stats {
	t.Helper()
	return loadPatientsAt(t, w, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), source, runID, rule, matches, ps...)
}

// loadPatientsAt is loadPatients with the patients last updated at.
func loadPatientsAt(t *testing.T, w *Warehouse, at time.Time, source, runID string, rule load.PersonRule, matches []load.MemberMatch, ps ...pat) load.Stats {
	t.Helper()
	ctx := t.Context()
	l, err := w.Begin(ctx, source, personTables)
	if err != nil {
		t.Fatal(err)
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, load.ResourcesSchema)
	pb := array.NewRecordBuilder(memory.DefaultAllocator, patientSchema)
	ib := array.NewRecordBuilder(memory.DefaultAllocator, identifierSchema)
	for i, p := range ps {
		rb.Field(0).(*array.StringBuilder).Append("Patient")
		rb.Field(1).(*array.StringBuilder).Append(p.id)
		rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
		rb.Field(3).AppendNull()
		rb.Field(4).(*array.StringBuilder).Append("Patient.ndjson")
		rb.Field(5).(*array.Int64Builder).Append(int64(i + 1))
		rb.Field(6).AppendNull()
		pb.Field(0).(*array.StringBuilder).Append(p.id)
		pb.Field(1).(*array.StringBuilder).Append(p.family)
		for j, id := range p.ids {
			system, value, _ := strings.Cut(id, "=")
			ib.Field(0).(*array.StringBuilder).Append(p.id)
			ib.Field(1).(*array.Int32Builder).Append(int32(j))
			ib.Field(2).(*array.StringBuilder).Append(system)
			ib.Field(3).(*array.StringBuilder).Append(value)
		}
	}
	for _, b := range []struct {
		table string
		rb    *array.RecordBuilder
	}{{load.Resources, rb}, {"patient", pb}, {"patient_identifier", ib}} {
		rec := b.rb.NewRecordBatch()
		if err := l.WriteBatch(ctx, b.table, rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.rb.Release()
	}
	if err := l.MemberMatches(ctx, matches); err != nil {
		t.Fatal(err)
	}
	st, err := l.Commit(ctx, load.Run{ID: runID, Source: source, Scope: "system", Started: time.Now(), Person: rule})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPersonCrosswalk(t *testing.T) {
	w, err := Open(t.Context(), t.TempDir()+"/w.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rule := load.PersonRule{IdentifierSystems: []string{memberSystem}, RosterSystem: memberSystem}
	mbi := load.MBISystem + "="
	loadPatients(t, w, "medicare", "r1", rule, nil,
		pat{"1", "Rivera", []string{mbi + "1EG4-TE5-MK73"}}, // written with dashes
		pat{"2", "Chen", []string{mbi + "2AB3CD4EF56"}},
		pat{"3", "Okafor", []string{mbi + "9ZZ9ZZ9ZZ99"}},
		pat{"4", "Okafor", []string{mbi + "9ZZ9ZZ9ZZ99"}}, // one MBI on two of this source's patients
		pat{"5", "Smith", nil})
	loadPatients(t, w, "plan-b", "r2", rule, nil,
		pat{"1", "Other", []string{mbi + "1eg4te5mk73 ", "http://plan-b/member=X1"}}, // the same MBI: the same person
		pat{"2", "Okafor", []string{mbi + "9ZZ9ZZ9ZZ99"}},                            // the conflicting MBI links nobody
		pat{"3", "Smith", nil}, // same name, no identifier: another person
		pat{"7", "Chen", []string{mbi + "2AB3CD4EF56", memberSystem + "=N-7"}},
		pat{"8", "Chen", []string{memberSystem + "=N-8"}})
	// Payer-to-Payer: the old plan's Patient/old-1 matched roster member
	// N-8 of the new payer (plan-b's member numbers); old-2 matched N-7,
	// who is also medicare's 2 by MBI, and old-2 carries medicare's MBI of
	// patient 1: one person would hold two medicare patients, so that
	// chain is not merged.
	st := loadPatients(t, w, "old-plan", "r3", rule,
		[]load.MemberMatch{{MemberID: "OLD-8", LinkID: "N-8", PatientID: "old-1"}},
		pat{"old-1", "Chen", nil})
	st2 := loadPatients(t, w, "old-plan-2", "r4", rule,
		[]load.MemberMatch{{MemberID: "OLD-7", LinkID: "N-7", GroupID: "g7"}},
		pat{"old-2", "Chen", []string{mbi + "1EG4TE5MK73"}})
	if st.PersonConflicts != 3 || st2.PersonConflicts != 8 {
		t.Errorf("patients in conflict: %d then %d, want 3 (one MBI twice at medicare, and at plan-b) then 8 (and the five of the chain)", st.PersonConflicts, st2.PersonConflicts)
	}
	same := func(a, b string) bool {
		got := query(t, w, `SELECT count(DISTINCT person_id)::VARCHAR FROM person WHERE data_source || '/' || patient_id IN ('`+a+`', '`+b+`')`)
		return got[0] == "1"
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"medicare/1", "plan-b/1", false}, // linked by MBI, but old-2 chains medicare/1 to medicare/2: split
		{"medicare/3", "plan-b/2", false}, // an MBI held twice at medicare links nobody
		{"medicare/4", "plan-b/2", false},
		{"medicare/5", "plan-b/3", false},       // names never link
		{"plan-b/8", "old-plan/old-1", true},    // the Payer-to-Payer match
		{"medicare/1", "medicare/2", false},     // two patients of one source are never one person
		{"old-plan-2/old-2", "plan-b/7", false}, // part of the split chain
	} {
		if got := same(c.a, c.b); got != c.same {
			t.Errorf("%s and %s one person: %v, want %v", c.a, c.b, got, c.same)
		}
	}
	// Every patient has exactly one person.
	if got := query(t, w, "SELECT (SELECT count(*) FROM patient)::VARCHAR || ' ' || (SELECT count(*) FROM person)::VARCHAR"); got[0] != "12 12" {
		t.Errorf("patients and persons: %s", got[0])
	}
	got := query(t, w, "SELECT concat_ws(' ', source, patient_id, reason) FROM fhirlake_person_conflicts WHERE identifier_system = '"+load.MBISystem+"' ORDER BY 1")
	want := []string{
		"medicare 1 would link two patients of one source into one person",
		"medicare 2 would link two patients of one source into one person",
		"medicare 3 identifier held by several patients of this source",
		"medicare 4 identifier held by several patients of this source",
		"old-plan-2 old-2 would link two patients of one source into one person",
		"plan-b 1 would link two patients of one source into one person",
		"plan-b 2 identifier held by several patients of this source",
		"plan-b 7 would link two patients of one source into one person",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
	// Without the chain, medicare/1 and plan-b/1 are one person.
	w2, err := Open(t.Context(), t.TempDir()+"/w2.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	loadPatients(t, w2, "medicare", "r1", rule, nil, pat{"1", "Rivera", []string{mbi + "1EG4-TE5-MK73"}})
	st = loadPatients(t, w2, "plan-b", "r2", rule, nil, pat{"1", "Other", []string{mbi + "1eg4te5mk73"}})
	if got := query(t, w2, "SELECT count(DISTINCT person_id)::VARCHAR FROM person"); got[0] != "1" || st.PersonConflicts != 0 || !st.Changes.Person {
		t.Errorf("one MBI at two payers: %s persons, %d conflicts, relinked %v", got[0], st.PersonConflicts, st.Changes.Person)
	}
	// A patient deleted leaves the crosswalk; the one it was linked to
	// keeps the person, named after it (the least of the two); a patient
	// who arrives gets a person of their own.
	own := query(t, w2, "SELECT person_id FROM person WHERE data_source = 'plan-b'")[0]
	l, err := w2.Begin(t.Context(), "plan-b", personTables)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(t.Context(), []load.Tombstone{{ResourceType: "Patient", ID: "1"}}); err != nil {
		t.Fatal(err)
	}
	st, err = l.Commit(t.Context(), load.Run{ID: "r3", Source: "plan-b", Scope: "system", Started: time.Now(), Person: rule})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Changes.Person {
		t.Error("a deleted patient left the crosswalk, but the run says it did not change")
	}
	if st = loadPatients(t, w2, "medicare", "r4", rule, nil, pat{"2", "Chen", nil}); !st.Changes.Person {
		t.Error("a new patient got a person, but the run says the crosswalk did not change")
	}
	got = query(t, w2, "SELECT data_source || '/' || patient_id || ' ' || (person_id = '"+own+"')::VARCHAR FROM person ORDER BY 1")
	if diff := cmp.Diff([]string{"medicare/1 true", "medicare/2 false"}, got); diff != "" {
		t.Errorf("persons after a deleted and a new patient (-want +got):\n%s", diff)
	}
	if got := query(t, w2, "SELECT count(DISTINCT person_id)::VARCHAR FROM person"); got[0] != "2" {
		t.Errorf("%s persons for two unlinked patients", got[0])
	}
	// A newer version of a patient with the same identifiers relinks
	// nobody: the run says so, and a lake keeps its crosswalk.
	before := query(t, w2, "SELECT data_source || '/' || patient_id || ' ' || person_id FROM person ORDER BY 1")
	st = loadPatientsAt(t, w2, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), "medicare", "r5", rule, nil,
		pat{"1", "Rivera-Chen", []string{mbi + "1EG4-TE5-MK73"}})
	if st.Changes.Person || st.Rows["patient"] != 1 {
		t.Errorf("a renamed patient: crosswalk changed %v (want false), %d patient rows loaded (want 1)", st.Changes.Person, st.Rows["patient"])
	}
	if diff := cmp.Diff(before, query(t, w2, "SELECT data_source || '/' || patient_id || ' ' || person_id FROM person ORDER BY 1")); diff != "" {
		t.Errorf("crosswalk after a renamed patient (-before +after):\n%s", diff)
	}
	// A new identifier no one else holds changes no person; a patient of
	// another payer who holds it too joins the two.
	st = loadPatientsAt(t, w2, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "medicare", "r6", rule, nil,
		pat{"2", "Chen", []string{mbi + "2EG4TE5MK73"}})
	st2 = loadPatientsAt(t, w2, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "plan-b", "r7", rule, nil,
		pat{"9", "Chen", []string{mbi + "2EG4TE5MK73"}})
	if st.Changes.Person || !st2.Changes.Person {
		t.Errorf("crosswalk changed: %v for a patient's new identifier, %v for a new patient it links, want false and true", st.Changes.Person, st2.Changes.Person)
	}
	if got := query(t, w2, "SELECT count(DISTINCT person_id)::VARCHAR FROM person WHERE data_source || '/' || patient_id IN ('medicare/2', 'plan-b/9')"); got[0] != "1" {
		t.Errorf("medicare/2 and plan-b/9 share an MBI but are %s persons", got[0])
	}
}
