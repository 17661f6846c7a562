package sandbox

import (
	"encoding/json"
	"testing"
)

// TestClaimsArePlausible: no claim, encounter or lab of a member starts
// before their birth or their coverage, over five years of history (where
// babies are born during it); Config.ImplausibleVisits brings them back.
// Conditions point only at encounters that exist.
func TestClaimsArePlausible(t *testing.T) {
	for _, keep := range []bool{false, true} {
		var bad int
		var total int
		birth := map[string]string{}    // patient id -> birthDate
		covered := map[string]string{}  // patient id -> coverage start
		encounters := map[string]bool{} // "Encounter/id"
		type dated struct{ patient, date, kind string }
		var events []dated
		var condEncounters []string
		err := Generate(Config{Members: 120, Seed: 1, HistoryYears: 5, ImplausibleVisits: keep}, func(typ string, line []byte) error {
			var r struct {
				ID             string
				BirthDate      string
				Patient        struct{ Reference string }
				Subject        struct{ Reference string }
				Beneficiary    struct{ Reference string }
				Encounter      struct{ Reference string }
				Period         struct{ Start string }
				BillablePeriod struct{ Start string }
				Effective      string `json:"effectiveDateTime"`
			}
			if err := json.Unmarshal(line, &r); err != nil {
				return err
			}
			switch typ {
			case "Patient":
				birth["Patient/"+r.ID] = r.BirthDate
			case "Coverage":
				covered[r.Beneficiary.Reference] = r.Period.Start
			case "ExplanationOfBenefit":
				events = append(events, dated{r.Patient.Reference, r.BillablePeriod.Start, typ})
			case "Encounter":
				encounters["Encounter/"+r.ID] = true
				events = append(events, dated{r.Subject.Reference, r.Period.Start, typ})
			case "Observation":
				events = append(events, dated{r.Subject.Reference, r.Effective, typ})
			case "Condition":
				if r.Encounter.Reference != "" {
					condEncounters = append(condEncounters, r.Encounter.Reference)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			total++
			if len(e.date) < 10 {
				t.Fatalf("%s of %s has no date", e.kind, e.patient)
			}
			day := e.date[:10]
			if day < birth[e.patient] || day < covered[e.patient] {
				bad++
				if !keep && bad <= 3 {
					t.Errorf("%s of %s on %s: born %s, covered from %s", e.kind, e.patient, day, birth[e.patient], covered[e.patient])
				}
			}
		}
		if keep && bad == 0 {
			t.Errorf("ImplausibleVisits: no visit before birth or coverage among %d; the switch does nothing", total)
		}
		if !keep {
			for _, ref := range condEncounters {
				if !encounters[ref] {
					t.Errorf("a Condition points at %s, which is not generated", ref)
				}
			}
		}
		t.Logf("implausible visits kept %v: %d of %d before birth or coverage", keep, bad, total)
	}
}
