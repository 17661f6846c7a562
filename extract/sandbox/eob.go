package sandbox

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// eobSpec describes one claim to turn into an ExplanationOfBenefit.
type eobSpec struct {
	kind       string // professional, inpatient, outpatient, pharmacy
	start, end time.Time
	provider   provider
	careTeam   []careMember
	pos        code // place of service; empty for pharmacy
	dx         []code
	procedures []code // ICD-10-PCS, inpatient
	lines      []claimLine
	daysSupply int // pharmacy
}

type careMember struct {
	who           provider
	role, display string // C4BBClaimCareTeamRole
}

// claimLine is one claim item. A proc with an empty code is sent as
// data-absent (room and board, operating room).
type claimLine struct {
	rev    *code
	proc   pricedCode
	qty    int
	copay  int64 // cents
	period bool  // servicedPeriod instead of servicedDate
	flat   bool  // proc.cents covers the whole quantity
}

// adjudication categories, in the order items list them.
var adjCategories = []struct{ system, code, display string }{
	{sysAdjudication, "submitted", "Submitted Amount"},
	{sysAdjudication, "eligible", "Eligible Amount"},
	{sysAdjudication, "deductible", "Deductible"},
	{sysAdjudication, "copay", "CoPay"},
	{sysC4BBAdj, "coinsurance", "Co-insurance"},
	{sysC4BBAdj, "noncovered", "Noncovered"},
	{sysC4BBAdj, "paidtoprovider", "Paid to provider"},
}

const adjPaid = 6 // index of paidtoprovider

func adjudications(amounts [7]int64) []obj {
	out := make([]obj, len(adjCategories))
	for k, c := range adjCategories {
		out[k] = o("category", cc(c.system, c.code, c.display), "amount", money(amounts[k]))
	}
	return out
}

// price adjudicates a line: submitted, eligible, deductible, copay,
// coinsurance, noncovered and paid, in cents, always adding up
// (eligible = deductible + copay + coinsurance + paid).
func price(r *rand.Rand, l claimLine, institutional bool) [7]int64 {
	var a [7]int64
	unit := l.proc.cents
	if !l.flat {
		unit *= int64(max(l.qty, 1))
	}
	a[0] = unit * int64(95+r.IntN(36)) / 100
	if r.Float64() < 0.04 {
		a[5] = a[0] // not covered at all
		return a
	}
	a[1] = a[0] * int64(45+r.IntN(36)) / 100
	left := a[1]
	if r.Float64() < 0.12 {
		a[2] = min(left, int64(5000+r.IntN(20000)))
		left -= a[2]
	}
	a[3] = min(left, l.copay)
	left -= a[3]
	if institutional || r.Float64() < 0.3 {
		a[4] = left * 20 / 100
		left -= a[4]
	}
	a[6] = left
	return a
}

func (g *gen) eob(r *rand.Rand, m *member, s eobSpec) {
	id := m.nextEOB()
	created := s.end.Truncate(24*time.Hour).AddDate(0, 0, 5+r.IntN(16))
	updated := created.Add(time.Duration(1+r.IntN(47)) * time.Hour)

	var typ, subType obj
	profile := profEOBProf
	switch s.kind {
	case "professional":
		typ = cc(sysClaimType, "professional", "Professional")
	case "pharmacy":
		typ, profile = cc(sysClaimType, "pharmacy", "Pharmacy"), profEOBPharmacy
	case "inpatient":
		typ, profile = cc(sysClaimType, "institutional", "Institutional"), profEOBInpatient
		subType = cc(sysC4BBInstSub, "inpatient", "Inpatient")
	case "outpatient":
		typ, profile = cc(sysClaimType, "institutional", "Institutional"), profEOBOutpat
		subType = cc(sysC4BBInstSub, "outpatient", "Outpatient")
	default:
		panic("sandbox: unknown claim kind " + s.kind)
	}
	institutional := subType != nil

	var team []obj
	for k, c := range s.careTeam {
		team = append(team, o("sequence", k+1, "provider", c.who.ref(), "responsible", k == 0, "role", cc(sysC4BBRole, c.role, c.display)))
	}
	info := []obj{o(
		"sequence", 1,
		"category", cc(sysC4BBSupport, "clmrecvddate", "Claim Received Date"),
		"timingDate", date(created.AddDate(0, 0, -3)),
	)}
	if s.daysSupply > 0 {
		info = append(info, o(
			"sequence", 2,
			"category", cc(sysC4BBSupport, "dayssupply", "Days Supply"),
			"valueQuantity", o("value", s.daysSupply),
		))
	}
	var diags []obj
	for k, d := range s.dx {
		t := cc(sysExDxType, "principal", "Principal Diagnosis")
		if k > 0 && institutional {
			t = cc(sysC4BBDxType, "other", "Other")
		} else if k > 0 {
			t = cc(sysC4BBDxType, "secondary", "Secondary")
		}
		diags = append(diags, o(
			"sequence", k+1,
			"diagnosisCodeableConcept", o("coding", []obj{coding(sysICD10CM, d.code, d.display)}),
			"type", []obj{t},
		))
	}
	var procs []obj
	for k, p := range s.procedures {
		t := cc(sysC4BBProcType, "principal", "Principal")
		if k > 0 {
			t = cc(sysC4BBProcType, "other", "Other")
		}
		procs = append(procs, o(
			"sequence", k+1,
			"type", []obj{t},
			"date", date(s.start.AddDate(0, 0, 1)),
			"procedureCodeableConcept", o("coding", []obj{coding(sysICD10PCS, p.code, p.display)}),
		))
	}

	var items []obj
	var totals [7]int64
	for k, l := range s.lines {
		a := price(r, l, institutional)
		for j := range totals {
			totals[j] += a[j]
		}
		var rev, loc obj
		if l.rev != nil {
			rev = cc(sysRevenue, l.rev.code, l.rev.display)
		}
		if s.pos.code != "" {
			loc = cc(sysPOS, s.pos.code, s.pos.display)
		}
		product := cc(l.proc.system, l.proc.code, l.proc.display)
		if l.proc.code == "" {
			product = cc(sysAbsent, "not-applicable", "Not Applicable")
		}
		served := []any{"servicedDate", date(s.start)}
		if l.period {
			served = []any{"servicedPeriod", o("start", date(s.start), "end", date(s.end))}
		}
		var dxSeq []any
		if s.kind == "professional" {
			dxSeq = []any{1}
		}
		kv := []any{"sequence", k + 1, "diagnosisSequence", dxSeq, "revenue", rev, "productOrService", product}
		kv = append(kv, served...)
		kv = append(kv, "locationCodeableConcept", loc, "quantity", o("value", max(l.qty, 1)), "adjudication", adjudications(a))
		items = append(items, o(kv...))
	}

	var total []obj
	for k, c := range adjCategories {
		total = append(total, o("category", cc(c.system, c.code, c.display), "amount", money(totals[k])))
	}
	g.put(o(
		"resourceType", "ExplanationOfBenefit", "id", id,
		"meta", meta(updated, profile),
		"identifier", []obj{o(
			"type", cc(sysC4BBIDType, "uc", "Unique Claim ID"),
			"system", "https://bison.example.org/fhir/claim-id",
			"value", fmt.Sprintf("%d", 2_000_000_000+r.Int64N(1_000_000_000)),
		)},
		"status", "active",
		"type", typ,
		"subType", subType,
		"use", "claim",
		"patient", ref("Patient/"+m.pid),
		"billablePeriod", o("start", date(s.start), "end", date(s.end)),
		"created", instant(created),
		"insurer", refDisplay("Organization/"+g.payer.id, g.payer.name),
		"provider", o("reference", "Organization/"+s.provider.id, "identifier", o("system", sysNPI, "value", s.provider.npi), "display", s.provider.name),
		"outcome", "complete",
		"careTeam", team,
		"supportingInfo", info,
		"diagnosis", diags,
		"procedure", procs,
		"insurance", []obj{o("focal", true, "coverage", ref("Coverage/"+m.covID))},
		"item", items,
		// Bison pays every claim in network (C4BB 2.x puts the benefit
		// payment status on the claim).
		"adjudication", []obj{o(
			"category", cc(sysC4BBAdjDiscriminator, "benefitpaymentstatus", "Benefit Payment Status"),
			"reason", cc(sysC4BBPayerAdjStatus, "innetwork", "In Network"),
		)},
		"total", total,
		"payment", o(
			"type", cc("http://terminology.hl7.org/CodeSystem/ex-paymenttype", "complete", "Complete"),
			"date", date(created.AddDate(0, 0, 2)),
			"amount", money(totals[adjPaid]),
		),
	))
}
