package jsondoc

import (
	"testing"
)

// line is a typical Observation of the benchmark workload.
const line = `{"resourceType":"Observation","id":"obs-0001-01","meta":{"lastUpdated":"2025-04-06T18:27:00Z","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}],"text":"Vital Signs"}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}],"text":"Blood pressure panel with all children optional"},"subject":{"reference":"Patient/pat-0001"},"encounter":{"reference":"Encounter/enc-0001-01"},"effectiveDateTime":"2025-04-06T08:27:00Z","issued":"2025-04-06T20:27:00Z","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}],"text":"Systolic blood pressure"},"valueQuantity":{"value":121,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}],"text":"Diastolic blood pressure"},"valueQuantity":{"value":86,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

// BenchmarkParse measures one core parsing a typical resource line.
func BenchmarkParse(b *testing.B) {
	var p Parser
	in := []byte(line)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := p.Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseFiltered is BenchmarkParse keeping only what the built-in
// observation view reads: the component list and more are skipped.
func BenchmarkParseFiltered(b *testing.B) {
	f := NewFilter("resourceType", "id", "meta", "status", "category", "code", "subject", "encounter",
		"effective", "value", "interpretation")
	var p Parser
	in := []byte(line)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := p.ParseFiltered(in, f); err != nil {
			b.Fatal(err)
		}
	}
}
