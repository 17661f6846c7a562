package sandbox

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// stream hands the synthetic population of cfg (defaults applied) to emit,
// one resource at a time, member by member: the providers first, then
// each member's resources, then the attribution Groups. It keeps one
// member's resources at a time (and the member ids, for the Groups), so a
// population of any size streams in bounded memory. The output depends
// only on cfg.Seed, cfg.Members, cfg.Start and cfg.HistoryYears: each
// member draws from its own PCG stream, so member i is the same whatever
// Members is. It stops at the first error emit returns.
func stream(cfg Config, emit func(obj) error) error {
	g := &gen{start: cfg.Start, years: max(cfg.HistoryYears, 1), emit: emit, implausible: cfg.ImplausibleVisits}
	cat := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xb150_0000))
	g.providers(cat)
	members := make([][]string, len(g.pcps)) // patient ids by attributed PCP
	periods := make([][]string, len(g.pcps))
	for i := 1; i <= cfg.Members && g.err == nil; i++ {
		r := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i)))
		pcp := r.IntN(len(g.pcps))
		if i <= len(g.pcps) {
			pcp = i - 1 // no empty group
		}
		pid, attributed := g.member(r, i, pcp)
		members[pcp] = append(members[pcp], pid)
		periods[pcp] = append(periods[pcp], attributed)
	}
	for k, p := range g.pcps {
		var ms []obj
		for j, pid := range members[k] {
			ms = append(ms, o("entity", ref("Patient/"+pid), "period", o("start", periods[k][j]), "inactive", false))
		}
		upd := g.start.Add(-time.Duration(1+cat.IntN(9*24)) * time.Hour)
		g.put(o(
			"resourceType", "Group", "id", "atr-"+p.npi,
			"meta", meta(upd, profGroup),
			"identifier", []obj{o("system", "https://bison.example.org/fhir/attribution-list", "value", "ATR-"+p.npi)},
			"active", true,
			"type", "person",
			"actual", true,
			"name", "Members attributed to "+p.name+" (NPI "+p.npi+")",
			"quantity", len(ms),
			"managingEntity", p.ref(),
			"member", ms,
		))
	}
	return g.err
}

// provider is a practitioner or organization the claims point at.
type provider struct {
	typ, id, npi, name string
}

func (p provider) ref() obj {
	return o("reference", p.typ+"/"+p.id, "identifier", o("system", sysNPI, "value", p.npi), "display", p.name)
}

type gen struct {
	start                       time.Time
	years                       int // of visits before start (Config.HistoryYears)
	payer, hospital, clinic, rx provider
	pcps                        []provider
	edDoc, hospitalist, surgeon provider
	emit                        func(obj) error
	err                         error // the first error emit returned
	// implausible keeps the visits a member could not have had: before
	// their birth or their coverage (Config.ImplausibleVisits).
	implausible bool
	// mute drops what put is given: a visit is still drawn, so that the
	// member's other resources are the same whether it is kept or not.
	mute bool
}

// put hands one generated resource to emit; after an error it drops them.
func (g *gen) put(x obj) {
	if g.err == nil && !g.mute {
		g.err = g.emit(x)
	}
}

// providers makes the payer, provider organizations and practitioners.
func (g *gen) providers(r *rand.Rand) {
	org := func(id, name, typ, typDisplay string) provider {
		p := provider{typ: "Organization", id: id, npi: npi(r), name: name}
		idents := []obj{
			o("type", cc(sysV2_0203, "NPI", "National provider identifier"), "system", sysNPI, "value", p.npi),
			// A C4BB provider organization's tax id: made from the NPI so
			// that it draws nothing from r.
			o("type", cc(sysV2_0203, "TAX", "Tax ID number"), "system", sysTIN, "value", tin(p.npi)),
		}
		if typ == "pay" {
			idents = []obj{o("type", cc(sysC4BBIDType, "payerid", "Payer ID"), "system", "https://bison.example.org/fhir/payerid", "value", "BISON01")}
		}
		pl := places[r.IntN(len(places))]
		g.put(o(
			"resourceType", "Organization", "id", id,
			"meta", meta(g.randomBefore(r, 365), profOrganization),
			"identifier", idents,
			"active", true,
			"type", []obj{cc("http://terminology.hl7.org/CodeSystem/organization-type", typ, typDisplay)},
			"name", name,
			"address", []obj{o("line", []any{strconv.Itoa(100+r.IntN(900)) + " " + streets[r.IntN(len(streets))]}, "city", pl.city, "state", pl.state, "postalCode", pl.zip, "country", "US")},
		))
		return p
	}
	g.payer = org("org-payer", "Bison Health Plan", "pay", "Payer")
	g.hospital = org("org-hospital", "Bison Valley Medical Center", "prov", "Healthcare Provider")
	g.clinic = org("org-clinic", "Prairie Family Medicine", "prov", "Healthcare Provider")
	g.rx = org("org-pharmacy", "Riverbend Pharmacy", "prov", "Healthcare Provider")

	n := 0
	prac := func(specialty code) provider {
		n++
		female := r.IntN(2) == 0
		given := pick(r, givenMale)
		if female {
			given = pick(r, givenFemale)
		}
		family := pick(r, families)
		p := provider{typ: "Practitioner", id: fmt.Sprintf("prac-%02d", n), npi: npi(r), name: "Dr. " + given + " " + family}
		g.put(o(
			"resourceType", "Practitioner", "id", p.id,
			"meta", meta(g.randomBefore(r, 365), profPractitioner),
			"identifier", []obj{o("type", cc(sysV2_0203, "NPI", "National provider identifier"), "system", sysNPI, "value", p.npi)},
			"active", true,
			"name", []obj{o("family", family, "given", []any{given}, "prefix", []any{"Dr."})},
			"qualification", []obj{o("code", cc(sysSNOMED, specialty.code, specialty.display))},
		))
		return p
	}
	for range 3 + r.IntN(3) {
		g.pcps = append(g.pcps, prac(code{"62247001", "Family medicine specialist"}))
	}
	g.edDoc = prac(code{"309294001", "Emergency department physician"})
	g.hospitalist = prac(code{"158973009", "Internal medicine specialist"})
	g.surgeon = prac(code{"304292004", "Surgeon"})
}

// npi returns a valid National Provider Identifier (Luhn check digit over
// the 80840 prefix).
// tin is a made-up employer identification number (NN-NNNNNNN) for the
// organization with this NPI.
func tin(npi string) string {
	return "9" + npi[len(npi)-1:] + "-" + npi[2:9]
}

func npi(r *rand.Rand) string {
	base := fmt.Sprintf("1%08d", r.IntN(100_000_000))
	sum := 24 // the digits of the 80840 prefix, as the NPI check digit rule says
	for i := len(base) - 1; i >= 0; i-- {
		d := int(base[i] - '0')
		if (len(base)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return base + strconv.Itoa((10-sum%10)%10)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// randomBefore returns an instant in the days before the clock start.
func (g *gen) randomBefore(r *rand.Rand, days int) time.Time {
	return g.start.Add(-time.Duration(1+r.Int64N(int64(days)*86400)) * time.Second)
}

// member is one synthetic member and the ids of what it has made so far.
type member struct {
	pid, covID, memberNo string
	age                  int
	birth, covStart      time.Time
	pcp                  provider
	chronic              []code
	conds                []condition
	nEnc, nEOB, nObs     int
}

type condition struct {
	dx      code
	chronic bool
	muted   bool // first recorded at a visit that is not emitted: not emitted either
	onset   time.Time
	enc     string // first encounter that recorded it
}

type visitKind int

const (
	officeVisit visitKind = iota
	edVisit
	inpatientStay
	pharmacyFill
	standaloneLab
)

type visit struct {
	kind visitKind
	at   time.Time
	drug int // pharmacyFill: index into drugs
}

// member generates one member's resources; it returns the Patient id and the
// attribution start date.
func (g *gen) member(r *rand.Rand, i, pcp int) (string, string) {
	m := &member{pid: fmt.Sprintf("pat-%04d", i), covID: fmt.Sprintf("cov-%04d", i), pcp: g.pcps[pcp]}
	if r.Float64() < 0.2 {
		m.age = r.IntN(18)
	} else {
		m.age = 18 + r.IntN(72)
	}
	m.memberNo = strconv.FormatInt(10_000_000_000+r.Int64N(89_999_999_999), 10)
	covStart := time.Date(g.start.Year()-1-r.IntN(4), time.Month(1+r.IntN(12)), 1, 0, 0, 0, 0, time.UTC)
	if first := time.Date(g.start.Year()-g.years, 1, 1, 0, 0, 0, 0, time.UTC); g.years > 1 && covStart.After(first) {
		covStart = first // covered for the whole history
	}
	m.covStart = covStart
	g.patient(r, m)
	g.coverage(r, m, covStart)

	// Chronic conditions, likelier with age.
	for k, dx := range chronicDx {
		rate := chronicRate[k]
		switch {
		case m.age < 18:
			rate = 0
		case m.age >= 50:
			rate *= 1.6
		default:
			rate *= 0.6
		}
		if r.Float64() < rate {
			m.chronic = append(m.chronic, dx)
			m.conds = append(m.conds, condition{dx: dx, chronic: true, onset: g.start.AddDate(0, 0, -400-r.IntN(2000))})
		}
	}

	// Visits over the years before the clock start (one by default), each
	// year drawn like the last, in date order.
	var visits []visit
	for y := range g.years {
		day := func() time.Time {
			d := g.start.AddDate(-y, 0, -35-r.IntN(295))
			return d.Add(time.Duration(8*60+r.IntN(9*60)) * time.Minute)
		}
		nOffice := 1 + r.IntN(4)
		if m.age < 18 {
			nOffice = 1 + r.IntN(2)
		}
		for range nOffice {
			visits = append(visits, visit{kind: officeVisit, at: day()})
		}
		if r.Float64() < 0.22 {
			visits = append(visits, visit{kind: edVisit, at: day()})
		}
		if inpatientRate := 0.06 + float64(m.age)/1000; r.Float64() < inpatientRate {
			visits = append(visits, visit{kind: inpatientStay, at: day()})
		}
		for _, dx := range m.chronic {
			for k, d := range drugs {
				if d.forDx == dx.code && r.Float64() < 0.8 {
					for range 1 + r.IntN(3) {
						visits = append(visits, visit{kind: pharmacyFill, at: day(), drug: k})
					}
					break
				}
			}
			if dx.code == "E11.9" && r.Float64() < 0.5 {
				visits = append(visits, visit{kind: standaloneLab, at: day()})
			}
		}
	}
	slices.SortStableFunc(visits, func(a, b visit) int { return a.at.Compare(b.at) })
	for _, v := range visits {
		// A payer has no claim of a visit before the member's birth or
		// coverage: it is drawn, not emitted.
		g.mute = !g.implausible && (v.at.Before(m.birth) || v.at.Before(m.covStart))
		switch v.kind {
		case officeVisit:
			g.office(r, m, v.at)
		case edVisit:
			g.emergency(r, m, v.at)
		case inpatientStay:
			g.inpatient(r, m, v.at)
		case pharmacyFill:
			g.pharmacy(r, m, v.at, drugs[v.drug])
		case standaloneLab:
			g.observation(r, m, "", v.at, "4548-4")
		}
	}
	g.mute = false
	for k, c := range m.conds {
		g.mute = c.muted
		g.condition(r, m, k, c)
	}
	g.mute = false
	attributed := covStart
	if y := time.Date(g.start.Year()-1, 1, 1, 0, 0, 0, 0, time.UTC); attributed.Before(y) {
		attributed = y
	}
	return m.pid, date(attributed)
}

func (g *gen) patient(r *rand.Rand, m *member) {
	female := r.IntN(2) == 0
	gender, given := "male", pick(r, givenMale)
	if female {
		gender, given = "female", pick(r, givenFemale)
	}
	family := pick(r, families)
	birth := g.start.AddDate(-m.age, 0, -1-r.IntN(364))
	m.birth = birth
	race := races[weighted(r, raceWeights)]
	eth := nonHispanic
	if r.Float64() < 0.12 {
		eth = hispanic
	}
	pl := pick(r, places)
	g.put(o(
		"resourceType", "Patient", "id", m.pid,
		"meta", meta(g.randomBefore(r, 365), profPatient),
		"extension", []obj{
			o("url", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension", []obj{
				o("url", "ombCategory", "valueCoding", coding(sysOMB, race.code, race.display)),
				o("url", "text", "valueString", race.display),
			}),
			o("url", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity", "extension", []obj{
				o("url", "ombCategory", "valueCoding", coding(sysOMB, eth.code, eth.display)),
				o("url", "text", "valueString", eth.display),
			}),
		},
		"identifier", []obj{g.memberIdentifier(m)},
		"active", true,
		"name", []obj{o("use", "official", "family", family, "given", []any{given})},
		"telecom", []obj{o("system", "phone", "value", fmt.Sprintf("555-%03d-%04d", 200+r.IntN(800), r.IntN(10000)), "use", "home")},
		"gender", gender,
		"birthDate", date(birth),
		"address", []obj{o("use", "home", "type", "physical", "line", []any{strconv.Itoa(100+r.IntN(9900)) + " " + pick(r, streets)}, "city", pl.city, "state", pl.state, "postalCode", pl.zip, "country", "US")},
	))
}

func (g *gen) memberIdentifier(m *member) obj {
	return o(
		"type", cc(sysV2_0203, "MB", "Member Number"),
		"system", "https://bison.example.org/fhir/memberidentifier",
		"value", m.memberNo,
		"assigner", refDisplay("Organization/"+g.payer.id, g.payer.name),
	)
}

func (g *gen) coverage(r *rand.Rand, m *member, start time.Time) {
	rel, relDisplay := "self", "Self"
	switch {
	case m.age < 18:
		rel, relDisplay = "child", "Child"
	case r.Float64() < 0.2:
		rel, relDisplay = "spouse", "Spouse"
	}
	plan := payerPlans[r.IntN(len(payerPlans)-1)]
	if plan.plan == "MA-HMO" || m.age >= 65 {
		plan = payerPlans[2]
		if m.age < 65 {
			plan = payerPlans[3]
		}
	}
	var self obj
	if rel == "self" {
		self = ref("Patient/" + m.pid)
	}
	dependent := map[string]string{"self": "01", "spouse": "02", "child": "03"}[rel]
	g.put(o(
		"resourceType", "Coverage", "id", m.covID,
		"meta", meta(g.randomBefore(r, 365), profCoverage),
		"identifier", []obj{g.memberIdentifier(m)},
		"status", "active",
		"type", cc(sysActCode, "HIP", "health insurance plan policy"),
		"policyHolder", self,
		"subscriber", self,
		"subscriberId", m.memberNo[:9],
		"beneficiary", ref("Patient/"+m.pid),
		"dependent", dependent,
		"relationship", cc("http://terminology.hl7.org/CodeSystem/subscriber-relationship", rel, relDisplay),
		"period", o("start", date(start)),
		"payor", []obj{refDisplay("Organization/"+g.payer.id, g.payer.name)},
		"class", []obj{
			o("type", cc(sysCovClass, "group", "Group"), "value", plan.group, "name", plan.groupName),
			o("type", cc(sysCovClass, "plan", "Plan"), "value", plan.plan, "name", plan.planName),
		},
	))
}

func weighted(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// conditionFor returns the id of m's Condition for dx, adding one for an
// acute diagnosis (chronic ones are shared by every encounter). muted says
// that the encounter is drawn but not emitted (gen.mute): a chronic
// condition does not point at it, and an acute one is not emitted either.
func (m *member) conditionFor(dx code, at time.Time, enc string, muted bool) string {
	for k := range m.conds {
		c := &m.conds[k]
		if c.chronic && c.dx == dx {
			if c.enc == "" && !muted {
				c.enc = enc
			}
			return m.condID(k)
		}
	}
	m.conds = append(m.conds, condition{dx: dx, onset: at, enc: enc, muted: muted})
	return m.condID(len(m.conds) - 1)
}

func (m *member) condID(k int) string { return fmt.Sprintf("cond-%s-%02d", m.pid[4:], k+1) }

func (m *member) nextEncounter() string {
	m.nEnc++
	return fmt.Sprintf("enc-%s-%02d", m.pid[4:], m.nEnc)
}

func (m *member) nextEOB() string {
	m.nEOB++
	return fmt.Sprintf("eob-%s-%02d", m.pid[4:], m.nEOB)
}

func (m *member) nextObservation() string {
	m.nObs++
	return fmt.Sprintf("obs-%s-%02d", m.pid[4:], m.nObs)
}

func (g *gen) condition(r *rand.Rand, m *member, k int, c condition) {
	category, catDisplay := "encounter-diagnosis", "Encounter Diagnosis"
	status, statusDisplay := "resolved", "Resolved"
	if c.chronic {
		category, catDisplay = "problem-list-item", "Problem List Item"
		status, statusDisplay = "active", "Active"
	}
	var enc obj
	if c.enc != "" {
		enc = ref("Encounter/" + c.enc)
	}
	upd := c.onset.Add(time.Duration(1+r.IntN(72)) * time.Hour)
	if c.chronic {
		upd = g.randomBefore(r, 365)
	}
	g.put(o(
		"resourceType", "Condition", "id", m.condID(k),
		"meta", meta(upd, profCondition),
		"clinicalStatus", cc("http://terminology.hl7.org/CodeSystem/condition-clinical", status, statusDisplay),
		"verificationStatus", cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
		"category", []obj{cc("http://terminology.hl7.org/CodeSystem/condition-category", category, catDisplay)},
		"code", cc(sysICD10CM, c.dx.code, c.dx.display),
		"subject", ref("Patient/"+m.pid),
		"encounter", enc,
		"onsetDateTime", date(c.onset),
		"recordedDate", date(c.onset),
	))
}

// encounter adds an Encounter and returns its id.
func (g *gen) encounter(r *rand.Rand, m *member, class, classDisplay string, typ code, start, end time.Time, dx []code, who, where provider) string {
	id := m.nextEncounter()
	var diags []obj
	for k, d := range dx {
		diags = append(diags, o(
			"condition", refDisplay("Condition/"+m.conditionFor(d, start, id, g.mute), d.display),
			"use", cc("http://terminology.hl7.org/CodeSystem/diagnosis-role", "billing", "Billing"),
			"rank", k+1,
		))
	}
	g.put(o(
		"resourceType", "Encounter", "id", id,
		"meta", meta(end.Add(time.Duration(1+r.IntN(48))*time.Hour), profEncounter),
		"status", "finished",
		"class", coding(sysActCode, class, classDisplay),
		"type", []obj{cc(sysSNOMED, typ.code, typ.display)},
		"subject", ref("Patient/"+m.pid),
		"participant", []obj{o("individual", refDisplay("Practitioner/"+who.id, who.name))},
		"period", o("start", instant(start), "end", instant(end)),
		"diagnosis", diags,
		"serviceProvider", refDisplay("Organization/"+where.id, where.name),
	))
	return id
}

// observation adds one lab or vital-sign Observation by LOINC code.
func (g *gen) observation(r *rand.Rand, m *member, enc string, at time.Time, loinc string) {
	id := m.nextObservation()
	at = at.Add(15 * time.Minute)
	category := cc(sysObsCategory, "laboratory", "Laboratory")
	profile := profLab
	var codeCC obj
	value := []any{}
	var components []obj
	qty := func(v float64, places int, unit string) obj {
		return o("value", dec(v, places), "unit", unit, "system", sysUCUM, "code", unit)
	}
	diabetic := slices.ContainsFunc(m.chronic, func(c code) bool { return c.code == "E11.9" })
	switch loinc {
	case "85354-9":
		category, profile = cc(sysObsCategory, "vital-signs", "Vital Signs"), profBP
		codeCC = cc(sysLOINC, "85354-9", "Blood pressure panel with all children optional")
		sys, dia := 105+r.IntN(35), 62+r.IntN(20)
		if slices.ContainsFunc(m.chronic, func(c code) bool { return c.code == "I10" }) {
			sys, dia = sys+15, dia+8
		}
		components = []obj{
			o("code", cc(sysLOINC, "8480-6", "Systolic blood pressure"), "valueQuantity", qty(float64(sys), 0, "mm[Hg]")),
			o("code", cc(sysLOINC, "8462-4", "Diastolic blood pressure"), "valueQuantity", qty(float64(dia), 0, "mm[Hg]")),
		}
	case "4548-4":
		codeCC = cc(sysLOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
		v := 4.8 + r.Float64()*1.2
		if diabetic {
			v = 6.2 + r.Float64()*4
		}
		value = []any{"valueQuantity", qty(v, 1, "%")}
	case "13457-7":
		codeCC = cc(sysLOINC, "13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation")
		value = []any{"valueQuantity", qty(float64(70+r.IntN(120)), 0, "mg/dL")}
	case "2345-7":
		codeCC = cc(sysLOINC, "2345-7", "Glucose [Mass/volume] in Serum or Plasma")
		v := 70 + r.IntN(40)
		if diabetic {
			v += 40 + r.IntN(90)
		}
		value = []any{"valueQuantity", qty(float64(v), 0, "mg/dL")}
	case "94500-6":
		codeCC = cc(sysLOINC, "94500-6", "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen by NAA with probe detection")
		result := code{"260385009", "Negative"}
		if r.Float64() < 0.15 {
			result = code{"10828004", "Positive"}
		}
		value = []any{"valueCodeableConcept", cc(sysSNOMED, result.code, result.display)}
	default:
		panic("sandbox: no observation for LOINC " + loinc)
	}
	var encRef obj
	if enc != "" {
		encRef = ref("Encounter/" + enc)
	}
	kv := []any{
		"resourceType", "Observation", "id", id,
		"meta", meta(at.Add(time.Duration(2+r.IntN(30))*time.Hour), profile),
		"status", "final",
		"category", []obj{category},
		"code", codeCC,
		"subject", ref("Patient/" + m.pid),
		"encounter", encRef,
		"effectiveDateTime", instant(at),
		"issued", instant(at.Add(time.Duration(1+r.IntN(20)) * time.Hour)),
	}
	kv = append(kv, value...)
	kv = append(kv, "component", components)
	g.put(o(kv...))
}

func (g *gen) office(r *rand.Rand, m *member, at time.Time) {
	dx := []code{pick(r, officeDx)}
	if len(m.chronic) > 0 && r.Float64() < 0.6 {
		dx[0] = pick(r, m.chronic)
	}
	for _, c := range m.chronic {
		if c != dx[0] && len(dx) < 3 {
			dx = append(dx, c)
		}
	}
	typ := code{"185349003", "Encounter for check up (procedure)"}
	if dx[0].code != "Z00.00" {
		typ = code{"390906007", "Follow-up encounter (procedure)"}
	}
	enc := g.encounter(r, m, "AMB", "ambulatory", typ, at, at.Add(30*time.Minute), dx, m.pcp, g.clinic)
	g.observation(r, m, enc, at, "85354-9")
	for _, c := range m.chronic {
		switch {
		case c.code == "E11.9" && r.Float64() < 0.7:
			g.observation(r, m, enc, at, "4548-4")
			g.observation(r, m, enc, at, "2345-7")
		case c.code == "E78.5" && r.Float64() < 0.5:
			g.observation(r, m, enc, at, "13457-7")
		}
	}
	if (dx[0].code == "J06.9" || dx[0].code == "J02.9") && r.Float64() < 0.5 {
		g.observation(r, m, enc, at, "94500-6")
	}
	em := pick(r, officeEM)
	if dx[0].code != "Z00.00" && em.code == "99396" {
		em = officeEM[1]
	}
	lines := []claimLine{{proc: em, qty: 1, copay: []int64{0, 2500, 4000}[r.IntN(3)]}}
	for _, k := range r.Perm(len(officeAncillary))[:1+r.IntN(4)] {
		lines = append(lines, claimLine{proc: officeAncillary[k], qty: 1})
	}
	g.eob(r, m, eobSpec{
		kind: "professional", start: at, end: at, provider: g.clinic,
		careTeam: []careMember{{m.pcp, "performing", "Performing provider"}},
		pos:      code{"11", "Office"}, dx: dx, lines: lines,
	})
}

func (g *gen) emergency(r *rand.Rand, m *member, at time.Time) {
	dx := []code{pick(r, edDx)}
	if len(m.chronic) > 0 {
		dx = append(dx, m.chronic[0])
	}
	end := at.Add(time.Duration(120+r.IntN(240)) * time.Minute)
	g.encounter(r, m, "EMER", "emergency", code{"50849002", "Emergency room admission (procedure)"}, at, end, dx, g.edDoc, g.hospital)
	em := pick(r, edEM)
	facility := []claimLine{{rev: &code{"0450", "Emergency room - general"}, proc: pricedCode{em.system, em.code, em.display, em.cents * 3}, qty: 1, copay: 15000}}
	for _, k := range r.Perm(len(edLines))[:1+r.IntN(4)] {
		l := edLines[k]
		facility = append(facility, claimLine{rev: &l.rev, proc: l.proc, qty: 1})
	}
	pos := code{"23", "Emergency Room - Hospital"}
	g.eob(r, m, eobSpec{
		kind: "outpatient", start: at, end: end, provider: g.hospital,
		careTeam: []careMember{{g.edDoc, "attending", "Attending"}},
		pos:      pos, dx: dx, lines: facility,
	})
	g.eob(r, m, eobSpec{
		kind: "professional", start: at, end: at, provider: g.hospital,
		careTeam: []careMember{{g.edDoc, "performing", "Performing provider"}},
		pos:      pos, dx: dx,
		lines: []claimLine{
			{proc: em, qty: 1},
			{proc: pricedCode{sysCPT, "93010", "Electrocardiogram, interpretation and report only", 3000}, qty: 1},
		},
	})
}

func (g *gen) inpatient(r *rand.Rand, m *member, at time.Time) {
	stay := inpatientDx[r.IntN(len(inpatientDx))]
	dx := append([]code{stay.dx}, m.chronic...)
	los := 2 + r.IntN(5)
	admit := at.Truncate(24 * time.Hour).Add(time.Duration(r.IntN(24)) * time.Hour)
	discharge := admit.AddDate(0, 0, los).Add(time.Duration(10-admit.Hour()) * time.Hour)
	surgical := stay.proc.code == "0DTJ4ZZ" || stay.proc.code == "0SRC0J9" || stay.proc.code == "027034Z"
	who := g.hospitalist
	if surgical {
		who = g.surgeon
	}
	g.encounter(r, m, "IMP", "inpatient encounter", code{"32485007", "Hospital admission (procedure)"}, admit, discharge, dx, who, g.hospital)
	lines := []claimLine{{rev: &roomAndBoard, proc: pricedCode{cents: roomAndBoardCents}, qty: los, period: true}}
	for k, l := range inpatientLines {
		if l.rev.code == "0360" && !surgical {
			continue
		}
		if l.rev.code == "0360" || r.Float64() < 0.6 || k == 0 {
			lines = append(lines, claimLine{rev: &l.rev, proc: l.proc, qty: 1, period: true})
		}
	}
	team := []careMember{{who, "attending", "Attending"}}
	if surgical {
		team = append(team, careMember{g.hospitalist, "referring", "Referring"})
	}
	g.eob(r, m, eobSpec{
		kind: "inpatient", start: admit, end: discharge, provider: g.hospital,
		careTeam: team, pos: code{"21", "Inpatient Hospital"}, dx: dx, lines: lines,
		procedures: []code{stay.proc},
	})
}

func (g *gen) pharmacy(r *rand.Rand, m *member, at time.Time, d struct {
	ndc, display string
	cents        int64
	forDx        string
}) {
	days := []int{30, 30, 90}[r.IntN(3)]
	g.eob(r, m, eobSpec{
		kind: "pharmacy", start: at, end: at, provider: g.rx,
		careTeam:   []careMember{{m.pcp, "prescribing", "Prescribing provider"}},
		daysSupply: days,
		lines: []claimLine{{
			proc:  pricedCode{sysNDC, d.ndc, d.display, d.cents * int64(days) / 30},
			qty:   days,
			copay: []int64{500, 1000, 1500}[r.IntN(3)],
			flat:  true,
		}},
	})
}
