package bench

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The native pipeline is the honest yardstick of fhirlake as a whole: what
// a data engineer fluent in DuckDB would write instead of our tool to build
// the same 16 tables, with the same columns, types and content, as the
// built-in views (schemas/*.json). Each resource type is read once, with
// read_ndjson and an explicit schema (no sampling, no auto-detection), into
// a temporary table holding only the members the views use; each table is
// then one CREATE TABLE ... AS SELECT over it, child tables by SQL unnest;
// last, each table is copied to zstd Parquet as fhirlake's lake lays it out
// (without the data_source level, as the native tables have no
// data_source column).
//
// The SQL follows the FHIRPath of the views where it matters to content:
// first() skips elements whose value is missing, references are keyed as
// getReferenceKey keys them (relative, absolute, versioned and urn
// references), a partial date is its first day, and a dateTime without a
// zone is taken as UTC.
//
// What it leaves to fhirlake, as a hand-written pipeline would: it trusts
// file names for the resource type (fhirlake reads each line's
// resourceType), keeps every copy of a resource exported twice (fhirlake
// keeps the newest), rejects nothing (fhirlake rejects lines without an id
// and values of the wrong JSON type, where DuckDB casts what it can), and
// reads neither .ndjson.gz files, a manifest nor deleted[] tombstones.

// nativeResource is one resource type the native pipeline reads: the files
// it comes from, the members read from them and the tables built from it.
type nativeResource struct {
	typ     string      // FHIR resource type, and the prefix of its files' names
	raw     string      // temporary table holding the rows read
	columns [][2]string // JSON member and its DuckDB type, in order
	tables  []nativeTable
}

// nativeTable is one table of the native pipeline: its name and the query
// over its resource's raw table that fills it.
type nativeTable struct {
	name   string
	query  string
	column string // the date or dateTime column the lake partitions by year; "" for none
	key    string // the Hive key of that partition (service_year...)
}

// Types of FHIR data types, with only the members the views read.
const (
	nativeCodingT  = `STRUCT("system" VARCHAR, "code" VARCHAR)[]`
	nativeConceptT = `STRUCT("coding" ` + nativeCodingT + `)`
	nativeRefT     = `STRUCT("reference" VARCHAR)`
	nativePeriodT  = `STRUCT("start" VARCHAR, "end" VARCHAR)`
	nativeMoneyT   = `STRUCT("value" DECIMAL(12,2))`
	nativeMetaT    = `STRUCT("lastUpdated" VARCHAR)`
	// nativeIdentT is an Identifier without its type.
	nativeIdentT = `STRUCT("system" VARCHAR, "value" VARCHAR)`
	// nativeQuantityT is a Quantity whose value has the precision of the
	// views' decimal columns without an ansi/type tag.
	nativeQuantityT = `STRUCT("value" DECIMAL(18,6), "unit" VARCHAR, "code" VARCHAR)`
)

// Code systems the views filter on.
const (
	nativeV2_0203     = "http://terminology.hl7.org/CodeSystem/v2-0203"
	nativeNPI         = "http://hl7.org/fhir/sid/us-npi"
	nativeLOINC       = "http://loinc.org"
	nativeCoverageCls = "http://terminology.hl7.org/CodeSystem/coverage-class"
	nativeAdjudSys    = "http://terminology.hl7.org/CodeSystem/adjudication"
)

// NativeTables lists the 16 tables the native pipeline builds, in creation order.
var NativeTables = func() []string {
	var names []string
	for _, r := range nativeResources() {
		for _, t := range r.tables {
			names = append(names, t.name)
		}
	}
	return names
}()

// NativeStatements returns the DuckDB-native pipeline over the NDJSON export in dir
// (files named <ResourceType>*.ndjson, e.g. Patient.ndjson or ExplanationOfBenefit.001.ndjson):
// read_ndjson with explicit columns into one temporary table per resource type, a
// CREATE TABLE ... AS SELECT per table, then a COPY of each table to zstd Parquet under
// lakeDir: lakeDir/<table>/<year key>=<year>/*.parquet for the tables fhirlake's lake
// partitions by year (<year key>=unknown for rows without a year, as there), and
// lakeDir/<table>.parquet for the others. lakeDir must exist and must not hold these
// tables already. A resource type without files gives empty tables.
//
// The statements must run in order on one connection (the temporary tables
// and the time zone are the connection's), in a database without tables of
// the same names.
func NativeStatements(dir, lakeDir string) []string {
	// Values without a zone are UTC, as fhirlake reads them; year() of a
	// partition column is taken in UTC too.
	stmts := []string{"SET TimeZone = 'UTC'"}
	for _, r := range nativeResources() {
		// A pattern Go cannot parse (dir holding a '[') is left to
		// read_ndjson, which fails on it rather than reading nothing.
		files, err := filepath.Glob(filepath.Join(dir, r.typ+"*.ndjson"))
		if err == nil && len(files) == 0 {
			// No file: an empty raw table of the same columns gives the
			// tables their columns and no row.
			var defs []string
			for _, c := range r.columns {
				defs = append(defs, nativeIdent(c[0])+" "+c[1])
			}
			stmts = append(stmts, fmt.Sprintf("CREATE TEMP TABLE %s (%s)", r.raw, strings.Join(defs, ", ")))
		} else {
			stmts = append(stmts, fmt.Sprintf(
				"CREATE TEMP TABLE %s AS SELECT * FROM read_ndjson(%s, columns=%s, format='newline_delimited')",
				r.raw, nativeString(filepath.Join(dir, r.typ+"*.ndjson")), nativeColumnsArg(r.columns)))
		}
		for _, t := range r.tables {
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s AS %s", t.name, t.query))
		}
		// The tables are built: free the raw rows.
		stmts = append(stmts, "DROP TABLE "+r.raw)
	}
	for _, r := range nativeResources() {
		for _, t := range r.tables {
			if t.column != "" {
				// Rows without a year go to <key>=unknown, as in fhirlake's lake.
				stmts = append(stmts, fmt.Sprintf(
					"COPY (SELECT *, coalesce(CAST(year(%s) AS VARCHAR), 'unknown') AS %s FROM %s) TO %s (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (%s))",
					t.column, t.key, t.name, nativeString(filepath.Join(lakeDir, t.name)), t.key))
			} else {
				stmts = append(stmts, fmt.Sprintf("COPY %s TO %s (FORMAT parquet, COMPRESSION zstd)",
					t.name, nativeString(filepath.Join(lakeDir, t.name+".parquet"))))
			}
		}
	}
	return stmts
}

// nativeResources describes the eight resource types the views read, with
// their tables. Every column below says which FHIRPath of the view it
// computes when the SQL alone does not make it plain.
func nativeResources() []nativeResource {
	return []nativeResource{
		nativePatient(),
		nativeCoverage(),
		nativeGroup(),
		nativeEncounter(),
		nativeEOB(),
		nativeObservation(),
		nativeOrganization(),
		nativePractitioner(),
	}
}

// nativeNPIOrTIN are the conditions on an Identifier x that it is an NPI
// or a TIN, as the views test them.
const (
	nativeIsNPI = `(x."system" = '` + nativeNPI + `' OR len(list_filter(x."type".coding, lambda c: c.code IN ('NPI', 'npi'))) > 0)`
	nativeIsTIN = `(x."system" = 'urn:oid:2.16.840.1.113883.4.4' OR len(list_filter(x."type".coding, lambda c: c.code IN ('TAX', 'tax'))) > 0)`
	// nativeIdentTypedT is an Identifier with its type.
	nativeIdentTypedT = `STRUCT("type" ` + nativeConceptT + `, "system" VARCHAR, "value" VARCHAR)`
)

// nativeOrganization builds organization.
func nativeOrganization() nativeResource {
	return nativeResource{
		typ: "Organization",
		raw: "raw_organization",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"active", "BOOLEAN"},
			{"name", "VARCHAR"},
			{"type", nativeConceptT + "[]"},
			{"identifier", nativeIdentTypedT + "[]"},
			{"address", `STRUCT("state" VARCHAR)[]`},
		},
		tables: []nativeTable{
			{name: "organization", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				active,
				name,
				` + nativeCode(nativeCodings(`"type"`), "c.system = 'http://terminology.hl7.org/CodeSystem/organization-type'", "code") + ` AS type_code,
				` + nativeFirst("identifier", nativeIsNPI, `"value"`) + ` AS npi,
				` + nativeFirst("identifier", nativeIsTIN, `"value"`) + ` AS tin,
				` + nativeFirstValue("list_transform(address, lambda a: a.state)") + ` AS state
			FROM raw_organization`},
		},
	}
}

// nativePractitioner builds practitioner.
func nativePractitioner() nativeResource {
	return nativeResource{
		typ: "Practitioner",
		raw: "raw_practitioner",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"active", "BOOLEAN"},
			{"name", `STRUCT("family" VARCHAR, "given" VARCHAR[])[]`},
			{"identifier", nativeIdentTypedT + "[]"},
			{"qualification", `STRUCT("code" ` + nativeConceptT + `)[]`},
		},
		tables: []nativeTable{
			{name: "practitioner", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				active,
				name[1].family AS family,
				` + nativeFirstValue("name[1].given") + ` AS given,
				` + nativeFirst("identifier", nativeIsNPI, `"value"`) + ` AS npi,
				` + nativeFirst("identifier", nativeIsTIN, `"value"`) + ` AS tin,
				` + nativeCode(nativeCodings("list_transform(qualification, lambda q: q.code)"), "", "code") + ` AS qualification_code
			FROM raw_practitioner`},
		},
	}
}

// nativePatient builds patient and patient_identifier.
func nativePatient() nativeResource {
	return nativeResource{
		typ: "Patient",
		raw: "raw_patient",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"identifier", `STRUCT("type" ` + nativeConceptT + `, "system" VARCHAR, "value" VARCHAR)[]`},
			{"name", `STRUCT("use" VARCHAR, "family" VARCHAR, "given" VARCHAR[], "suffix" VARCHAR[])[]`},
			{"gender", "VARCHAR"},
			{"birthDate", "VARCHAR"},
			{"extension", `STRUCT("url" VARCHAR, "extension" STRUCT("url" VARCHAR, "valueCoding" STRUCT("code" VARCHAR))[])[]`},
			{"deceasedBoolean", "BOOLEAN"},
			{"deceasedDateTime", "VARCHAR"},
			{"address", `STRUCT("line" VARCHAR[], "city" VARCHAR, "state" VARCHAR, "postalCode" VARCHAR)[]`},
			{"telecom", `STRUCT("system" VARCHAR, "value" VARCHAR)[]`},
		},
		tables: []nativeTable{
			{name: "patient", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				` + nativeFirst("identifier", nativeHas("x.type.coding", "c.system = '"+nativeV2_0203+"' AND c.code = 'MB'"), `"value"`) + ` AS member_id,
				` + nativeFirst("identifier", `x."system" = 'http://hl7.org/fhir/sid/us-mbi'`, `"value"`) + ` AS mbi,
				-- name.where(use = 'official' or use.empty()).family.first() | name.family.first():
				-- a union of two values, which is null (two values for one cell) when they differ.
				CASE WHEN official_family IS NULL OR official_family = any_family THEN any_family END AS family,
				CASE WHEN official_given IS NULL OR official_given = any_given THEN any_given END AS given,
				gender,
				` + nativeDate("birthDate") + ` AS birth_date,
				` + nativeOMB("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race") + ` AS race_code,
				` + nativeOMB("http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity") + ` AS ethnicity_code,
				-- deceased.ofType(dateTime).exists() or deceased.ofType(boolean) = true: null when neither is given.
				deceasedDateTime IS NOT NULL OR deceasedBoolean AS deceased,
				` + nativeTimestamp("deceasedDateTime") + ` AS deceased_date_time,
				address[1].state AS state,
				address[1].postalCode AS postal_code,
				name[1].suffix[1] AS name_suffix,
				name[1].given[2] AS middle_name,
				address[1].line[1] AS address_line,
				address[1].city AS city,
				` + nativeFirst("telecom", `x."system" = 'phone'`, `"value"`) + ` AS phone,
				` + nativeFirst("telecom", `x."system" = 'email'`, `"value"`) + ` AS email
			FROM (SELECT *,
				` + nativeFirst(`list_filter(name, lambda n: n."use" = 'official' OR n."use" IS NULL)`, "", "family") + ` AS official_family,
				` + nativeFirst("name", "", "family") + ` AS any_family,
				` + nativeFirstValue(`flatten(list_transform(list_filter(name, lambda n: n."use" = 'official' OR n."use" IS NULL), lambda n: n.given))`) + ` AS official_given,
				` + nativeFirstValue(`flatten(list_transform(name, lambda n: n.given))`) + ` AS any_given
			FROM raw_patient)`},
			{name: "patient_identifier", query: `SELECT id AS patient_id, idx,
				` + nativeCode("el.type.coding", "c.system = '"+nativeV2_0203+"'", "code") + ` AS type_code,
				el."system" AS "system",
				el."value" AS "value"
			FROM ` + nativeUnnest("raw_patient", "identifier")},
		},
	}
}

// nativeBlueButton starts the URLs of the CMS Blue Button extensions.
const nativeBlueButton = "https://bluebutton.cms.gov/resources/variables/"

// nativeCoverage builds coverage.
func nativeCoverage() nativeResource {
	class := func(code, field string) string {
		return nativeFirst(`"class"`, nativeHas("x.type.coding", "c.system = '"+nativeCoverageCls+"' AND c.code = '"+code+"'"), field)
	}
	return nativeResource{
		typ: "Coverage",
		raw: "raw_coverage",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"status", "VARCHAR"},
			{"beneficiary", nativeRefT},
			{"subscriberId", "VARCHAR"},
			{"relationship", nativeConceptT},
			{"period", nativePeriodT},
			{"payor", `STRUCT("reference" VARCHAR, "display" VARCHAR, "identifier" ` + nativeIdentT + `)[]`},
			{"class", `STRUCT("type" ` + nativeConceptT + `, "value" VARCHAR, "name" VARCHAR)[]`},
			{"type", nativeConceptT},
			{"extension", `STRUCT("url" VARCHAR, "valueCoding" STRUCT("code" VARCHAR))[]`},
		},
		tables: []nativeTable{
			{name: "coverage", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				status,
				` + nativeRefKey("beneficiary", "Patient") + ` AS patient_id,
				subscriberId AS subscriber_id,
				` + nativeCode("relationship.coding", "c.system = 'http://terminology.hl7.org/CodeSystem/subscriber-relationship'", "code") + ` AS relationship_code,
				` + nativeDate("period.start") + ` AS period_start,
				` + nativeDate(`period."end"`) + ` AS period_end,
				` + nativeFirstValue("list_transform(payor, lambda p: "+nativeRefKey("p", "")+")") + ` AS payor_id,
				-- (payor.display | payor.identifier.value).first()
				coalesce(` + nativeFirst("payor", "", "display") + `, ` + nativeFirst("payor", "", `identifier."value"`) + `) AS payor_name,
				` + class("plan", `"value"`) + ` AS plan_value,
				` + class("plan", "name") + ` AS plan_name,
				` + class("group", `"value"`) + ` AS group_value,
				` + class("group", "name") + ` AS group_name,
				` + nativeCode(`"type".coding`, "c.system = 'http://terminology.hl7.org/CodeSystem/v3-ActCode'", "code") + ` AS type_code,
				` + nativeFirst("extension", "x.url = '"+nativeBlueButton+"ms_cd'", "valueCoding.code") + ` AS medicare_status_code,
				` + nativeFirst("extension", "x.url = '"+nativeBlueButton+"orec'", "valueCoding.code") + ` AS orec_code,
				list_filter(extension, lambda x: starts_with(x.url, '` + nativeBlueButton + `dual_') AND x.valueCoding.code IS NOT NULL)[-1].valueCoding.code AS dual_status_code
			FROM raw_coverage`},
		},
	}
}

// nativeGroup builds attribution.
func nativeGroup() nativeResource {
	return nativeResource{
		typ: "Group",
		raw: "raw_group",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"managingEntity", nativeRefT},
			{"characteristic", `STRUCT("valueReference" STRUCT("identifier" ` + nativeIdentT + `))[]`},
			{"member", `STRUCT("entity" ` + nativeRefT + `, "period" ` + nativePeriodT + `, "inactive" BOOLEAN, ` +
				`"extension" STRUCT("url" VARCHAR, "valueReference" ` + nativeRefT + `)[])[]`},
		},
		tables: []nativeTable{
			{name: "attribution", query: `SELECT id AS group_id, managing_entity_id, group_npi,
				idx,
				` + nativeRefKey("el.entity", "Patient") + ` AS patient_id,
				` + nativeDate("el.period.start") + ` AS period_start,
				` + nativeDate(`el.period."end"`) + ` AS period_end,
				el.inactive AS inactive,
				-- extension(ATR attributed provider).value.ofType(Reference).getReferenceKey().first()
				` + nativeFirstValue("list_transform(list_filter(el.extension, lambda e: e.url = 'http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributedProvider'), lambda e: "+nativeRefKey("e.valueReference", "")+")") + ` AS provider_id
			FROM ` + nativeUnnest(`(SELECT id, "member",
					`+nativeRefKey("managingEntity", "")+` AS managing_entity_id,
					-- characteristic.value.ofType(Reference).identifier.where(system = NPI).value.first()
					`+nativeFirst("characteristic", `x.valueReference.identifier."system" = '`+nativeNPI+`'`, `valueReference.identifier."value"`)+` AS group_npi
				FROM raw_group)`, "member", "id", "managing_entity_id", "group_npi")},
		},
	}
}

// nativeEncounter builds encounter and encounter_diagnosis.
func nativeEncounter() nativeResource {
	condKey := func(list string) string {
		return nativeFirstValue("list_transform(" + list + ", lambda d: " + nativeRefKey("d.condition", "Condition") + ")")
	}
	return nativeResource{
		typ: "Encounter",
		raw: "raw_encounter",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"status", "VARCHAR"},
			{"class", `STRUCT("code" VARCHAR)`},
			{"type", nativeConceptT + "[]"},
			{"subject", nativeRefT},
			{"period", nativePeriodT},
			{"serviceProvider", nativeRefT},
			{"diagnosis", `STRUCT("condition" ` + nativeRefT + `, "use" ` + nativeConceptT + `, "rank" INTEGER)[]`},
		},
		tables: []nativeTable{
			{name: "encounter", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				status,
				"class".code AS class_code,
				` + nativeCode(nativeCodings(`"type"`), nativeSystemIn("http://snomed.info/sct", "http://www.ama-assn.org/go/cpt"), "code") + ` AS type_code,
				` + nativeRefKey("subject", "Patient") + ` AS patient_id,
				` + nativeTimestamp("period.start") + ` AS period_start,
				` + nativeTimestamp(`period."end"`) + ` AS period_end,
				` + nativeRefKey("serviceProvider", "") + ` AS service_provider_id,
				-- (diagnosis.where(rank = 1) | diagnosis).condition.getReferenceKey(Condition).first()
				coalesce(` + condKey(`list_filter(diagnosis, lambda d: d."rank" = 1)`) + `, ` + condKey("diagnosis") + `) AS primary_condition_id
			FROM raw_encounter`},
			{name: "encounter_diagnosis", query: `SELECT id AS encounter_id, idx,
				` + nativeRefKey("el.condition", "Condition") + ` AS condition_id,
				` + nativeCode(`el."use".coding`, "", "code") + ` AS use_code,
				el."rank" AS "rank"
			FROM ` + nativeUnnest("raw_encounter", "diagnosis")},
		},
	}
}

// nativeEOB builds eob and its five child tables.
func nativeEOB() nativeResource {
	icd := nativeSystemIn("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-9-cm")
	service := nativeSystemIn("http://www.ama-assn.org/go/cpt", "https://bluebutton.cms.gov/resources/codesystem/hcpcs", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets")
	// category is the condition on an adjudication's (or total's) codings
	// that it is of one of these codes.
	category := func(codes ...string) string {
		return nativeHas("a.category.coding", "c.code IN ("+nativeList(codes)+")")
	}
	adjT := `STRUCT("category" ` + nativeConceptT + `, "reason" ` + nativeConceptT + `, "amount" ` + nativeMoneyT + `)[]`
	return nativeResource{
		typ: "ExplanationOfBenefit",
		raw: "raw_eob",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"status", "VARCHAR"},
			{"patient", nativeRefT},
			{"type", nativeConceptT},
			{"subType", nativeConceptT},
			{"use", "VARCHAR"},
			{"billablePeriod", nativePeriodT},
			{"created", "VARCHAR"},
			{"insurer", nativeRefT},
			{"provider", `STRUCT("reference" VARCHAR, "identifier" ` + nativeIdentTypedT + `)`},
			{"contained", `STRUCT("resourceType" VARCHAR, "id" VARCHAR, "identifier" ` + nativeIdentTypedT + `[])[]`},
			{"adjudication", adjT},
			{"outcome", "VARCHAR"},
			{"total", `STRUCT("category" ` + nativeConceptT + `, "amount" ` + nativeMoneyT + `)[]`},
			{"payment", `STRUCT("amount" ` + nativeMoneyT + `, "date" VARCHAR)`},
			{"supportingInfo", `STRUCT("category" ` + nativeConceptT + `, "code" ` + nativeConceptT + `, "valueQuantity" STRUCT("value" DOUBLE), "timingPeriod" ` + nativePeriodT + `)[]`},
			{"facility", `STRUCT("reference" VARCHAR, "identifier" STRUCT("system" VARCHAR, "value" VARCHAR, "type" ` + nativeConceptT + `), "extension" STRUCT("url" VARCHAR, "valueCoding" STRUCT("code" VARCHAR))[])`},
			{"extension", `STRUCT("url" VARCHAR, "valueCoding" STRUCT("code" VARCHAR))[]`},
			{"careTeam", `STRUCT("sequence" INTEGER, "provider" STRUCT("reference" VARCHAR, "identifier" STRUCT("system" VARCHAR, "value" VARCHAR, "type" ` + nativeConceptT + `)), "role" ` + nativeConceptT + `)[]`},
			{"diagnosis", `STRUCT("sequence" INTEGER, "diagnosisCodeableConcept" ` + nativeConceptT + `, "diagnosisReference" ` + nativeRefT +
				`, "type" ` + nativeConceptT + `[], "onAdmission" ` + nativeConceptT + `)[]`},
			{"procedure", `STRUCT("sequence" INTEGER, "procedureCodeableConcept" ` + nativeConceptT + `, "date" VARCHAR)[]`},
			{"item", `STRUCT("sequence" INTEGER, "productOrService" ` + nativeConceptT + `, "revenue" ` + nativeConceptT +
				`, "servicedDate" VARCHAR, "servicedPeriod" ` + nativePeriodT + `, "quantity" STRUCT("value" DECIMAL(18,6)), "locationCodeableConcept" ` +
				nativeConceptT + `, "adjudication" ` + adjT + `, "modifier" ` + nativeConceptT + `[])[]`},
		},
		tables: []nativeTable{
			{name: "eob", column: "billable_period_start", key: "service_year", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				status,
				` + nativeRefKey("patient", "Patient") + ` AS patient_id,
				` + nativeCode(`"type".coding`, "c.system = 'http://terminology.hl7.org/CodeSystem/claim-type'", "code") + ` AS claim_type,
				` + nativeCode("subType.coding", "starts_with(c.system, 'http://hl7.org/fhir/us/carin-bb/CodeSystem/')", "code") + ` AS claim_subtype,
				"use",
				` + nativeDate("billablePeriod.start") + ` AS billable_period_start,
				` + nativeDate(`billablePeriod."end"`) + ` AS billable_period_end,
				` + nativeTimestamp("created") + ` AS created,
				` + nativeRefKey("insurer", "") + ` AS insurer_id,
				` + nativeRefKey("provider", "") + ` AS provider_id,
				outcome,
				` + nativeAmount("total", nativeHas("a.category.coding",
				"(c.system = '"+nativeAdjudSys+"' AND c.code = 'submitted') OR "+
					"(c.system = 'https://bluebutton.cms.gov/resources/codesystem/adjudication' AND c.code = 'https://bluebutton.cms.gov/resources/variables/clm_tot_chrg_amt')")) + ` AS total_submitted,
				` + nativeAmount("total", nativeHas("a.category.coding",
				"(c.system = '"+nativeAdjudSys+"' AND c.code = 'benefit') OR "+
					"(c.system = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication' AND c.code = 'paidtoprovider')")) + ` AS total_paid,
				payment.amount."value" AS payment_amount,
				` + nativeDate("payment.date") + ` AS payment_date,
				` + nativeFirst("billing_ids", nativeIsNPI, `"value"`) + ` AS provider_npi,
				` + nativeFirst("supportingInfo", nativeHas("x.category.coding", "c.code = 'dayssupply'"), "valueQuantity.value") + `::INTEGER AS days_supply,
				` + nativeFirst("supportingInfo", nativeHas("x.category.coding", "c.code = 'refillnum'"), "valueQuantity.value") + `::INTEGER AS refills,
				-- the whole NUBC code, else CMS's three digits put together
				coalesce(` + nativeInfo([]string{"typeofbill"}, "c.system = 'https://www.nubc.org/CodeSystem/TypeOfBill'", "code") + `,
					` + nativeFirst("facility.extension", "x.url = '"+nativeBlueButton+"clm_fac_type_cd'", "valueCoding.code") + `
					|| ` + nativeFirst("extension", "x.url = '"+nativeBlueButton+"clm_srvc_clsfctn_type_cd'", "valueCoding.code") + `
					|| ` + nativeInfo([]string{"typeofbill"}, "c.system = '"+nativeBlueButton+"clm_freq_cd'", "code") + `) AS bill_type_code,
				` + nativeInfo([]string{"drg", nativeBlueButton + "clm_drg_cd"}, "", "code") + ` AS drg_code,
				` + nativeInfo([]string{"drg", nativeBlueButton + "clm_drg_cd"}, "", `"system"`) + ` AS drg_system,
				` + nativeInfo([]string{"admtype", nativeBlueButton + "clm_ip_admsn_type_cd"}, "", "code") + ` AS admit_type_code,
				` + nativeInfo([]string{"pointoforigin", nativeBlueButton + "clm_src_ip_admsn_cd"}, "", "code") + ` AS admit_source_code,
				` + nativeInfo([]string{"discharge-status"}, "", "code") + ` AS discharge_status_code,
				CASE WHEN facility.identifier."system" = '` + nativeNPI + `' OR ` + nativeHas("facility.identifier.type.coding", "c.code = 'npi'") + ` THEN facility.identifier."value" END AS facility_npi,
				` + nativeDate(nativeFirst("supportingInfo", nativeHas("x.category.coding", "c.code = 'admissionperiod'"), "timingPeriod.start")) + ` AS admission_start,
				` + nativeDate(nativeFirst("supportingInfo", nativeHas("x.category.coding", "c.code = 'admissionperiod'"), `timingPeriod."end"`)) + ` AS admission_end,
				` + nativeRefKey("facility", "") + ` AS facility_id,
				` + nativeFirst("billing_ids", nativeIsTIN, `"value"`) + ` AS provider_tin,
				-- (total.category.coding | adjudication.category.coding |
				-- adjudication.where(benefitpaymentstatus).reason.coding).where(status).code.first()
				` + nativeCode(`flatten(flatten([list_transform(total, lambda a: a.category.coding),
					list_transform(adjudication, lambda a: a.category.coding),
					list_transform(list_filter(adjudication, lambda a: `+nativeHas("a.category.coding", "c.code = 'benefitpaymentstatus'")+`), lambda a: a.reason.coding)]))`,
				"c.system = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus' AND c.code IN ('innetwork', 'outofnetwork', 'other')", "code") + ` AS network_status
			FROM (SELECT *,
				-- provider.identifier | contained.where(('#' & id) = %resource.provider.reference).identifier
				list_concat([provider.identifier], flatten(list_transform(
					list_filter(contained, lambda o: '#' || o.id = provider.reference), lambda o: o.identifier))) AS billing_ids
			FROM raw_eob)`},
			{name: "eob_care_team", query: `SELECT id AS eob_id, idx,
				el."sequence" AS "sequence",
				` + nativeRefKey("el.provider", "") + ` AS provider_id,
				-- provider.identifier.where(system = NPI).value.first(): Reference.identifier is one Identifier.
				CASE WHEN el.provider.identifier."system" = '` + nativeNPI + `' OR ` + nativeHas("el.provider.identifier.type.coding", "c.code = 'npi'") + ` THEN el.provider.identifier."value" END AS provider_npi,
				` + nativeCode("el.role.coding", "", "code") + ` AS role_code
			FROM ` + nativeUnnest("raw_eob", "careTeam")},
			{name: "eob_diagnosis", query: `SELECT id AS eob_id, idx,
				el."sequence" AS "sequence",
				` + nativeCode("el.diagnosisCodeableConcept.coding", icd, "code") + ` AS code,
				` + nativeCode("el.diagnosisCodeableConcept.coding", icd, `"system"`) + ` AS "system",
				` + nativeRefKey("el.diagnosisReference", "Condition") + ` AS condition_id,
				` + nativeCode(nativeCodings(`el."type"`), "", "code") + ` AS type_code,
				` + nativeCode("el.onAdmission.coding", "", "code") + ` AS on_admission_code
			FROM ` + nativeUnnest("raw_eob", "diagnosis")},
			{name: "eob_item", column: "serviced_start", key: "service_year", query: `SELECT id AS eob_id, idx,
				el."sequence" AS "sequence",
				` + nativeCode("el.productOrService.coding", service, "code") + ` AS service_code,
				` + nativeCode("el.productOrService.coding", service, `"system"`) + ` AS service_system,
				` + nativeCode("el.productOrService.coding", "c.system = 'http://hl7.org/fhir/sid/ndc'", "code") + ` AS ndc,
				` + nativeCode("el.revenue.coding", nativeSystemIn("https://www.nubc.org/CodeSystem/RevenueCodes", "https://bluebutton.cms.gov/resources/variables/rev_cntr"), "code") + ` AS revenue_code,
				-- (serviced.ofType(date) | serviced.ofType(Period).start).first(), and the same with end
				` + nativeDate("coalesce(el.servicedDate, el.servicedPeriod.start)") + ` AS serviced_start,
				` + nativeDate(`coalesce(el.servicedDate, el.servicedPeriod."end")`) + ` AS serviced_end,
				el.quantity."value" AS quantity,
				` + nativeCode("el.locationCodeableConcept.coding", nativeSystemIn("https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "https://bluebutton.cms.gov/resources/variables/line_place_of_srvc_cd"), "code") + ` AS place_of_service,
				-- submitted skips the CMS per-unit rate, which is also of category submitted.
				` + nativeAmount("el.adjudication", category("submitted")+" AND NOT "+category("https://bluebutton.cms.gov/resources/variables/rev_cntr_rate_amt")) + ` AS submitted,
				` + nativeAmount("el.adjudication", category("eligible")) + ` AS allowed,
				` + nativeAmount("el.adjudication", category("paidtoprovider", "benefit")) + ` AS paid,
				` + nativeAmount("el.adjudication", category("copay")) + ` AS copay,
				` + nativeAmount("el.adjudication", category("deductible")) + ` AS deductible,
				` + nativeAmount("el.adjudication", category("coinsurance")) + ` AS coinsurance,
				` + nativeAmount("el.adjudication", category("noncovered")) + ` AS noncovered,
				` + nativeFirstValue("list_transform(el.modifier[1].coding, lambda c: c.code)") + ` AS modifier_1,
				` + nativeFirstValue("list_transform(el.modifier[2].coding, lambda c: c.code)") + ` AS modifier_2,
				` + nativeFirstValue("list_transform(el.modifier[3].coding, lambda c: c.code)") + ` AS modifier_3,
				` + nativeFirstValue("list_transform(el.modifier[4].coding, lambda c: c.code)") + ` AS modifier_4,
				` + nativeFirstValue("list_transform(el.modifier[5].coding, lambda c: c.code)") + ` AS modifier_5
			FROM ` + nativeUnnest("raw_eob", "item")},
			// Two levels of forEach: items, then the adjudications of each.
			{name: "eob_item_adjudication", query: `SELECT id AS eob_id, item_idx, item_sequence, adj_idx AS idx,
				` + nativeCode("adj.category.coding", "", `"system"`) + ` AS category_system,
				` + nativeCode("adj.category.coding", "", "code") + ` AS category_code,
				` + nativeCode("adj.reason.coding", "", "code") + ` AS reason_code,
				adj.amount."value" AS amount
			FROM (SELECT id, idx AS item_idx, el."sequence" AS item_sequence, unnest(el.adjudication) AS adj,
					CAST(generate_subscripts(el.adjudication, 1) - 1 AS INTEGER) AS adj_idx
				FROM ` + nativeUnnest("raw_eob", "item") + `)`},
			{name: "eob_procedure", query: `SELECT id AS eob_id, idx,
				el."sequence" AS "sequence",
				` + nativeCode("el.procedureCodeableConcept.coding", "", "code") + ` AS code,
				` + nativeCode("el.procedureCodeableConcept.coding", "", `"system"`) + ` AS "system",
				` + nativeTimestamp("el.date") + ` AS performed
			FROM ` + nativeUnnest("raw_eob", "procedure")},
		},
	}
}

// nativeObservation builds observation and observation_component.
func nativeObservation() nativeResource {
	loinc := "c.system = '" + nativeLOINC + "'"
	return nativeResource{
		typ: "Observation",
		raw: "raw_observation",
		columns: [][2]string{
			{"id", "VARCHAR"},
			{"meta", nativeMetaT},
			{"status", "VARCHAR"},
			{"category", nativeConceptT + "[]"},
			{"code", `STRUCT("coding" STRUCT("system" VARCHAR, "code" VARCHAR, "display" VARCHAR)[])`},
			{"subject", nativeRefT},
			{"encounter", nativeRefT},
			{"effectiveDateTime", "VARCHAR"},
			{"effectiveInstant", "VARCHAR"},
			{"effectivePeriod", nativePeriodT},
			{"valueQuantity", nativeQuantityT},
			{"valueCodeableConcept", nativeConceptT},
			{"valueString", "VARCHAR"},
			{"valueBoolean", "BOOLEAN"},
			{"interpretation", nativeConceptT + "[]"},
			{"component", `STRUCT("code" ` + nativeConceptT + `, "valueQuantity" ` + nativeQuantityT + `, "valueCodeableConcept" ` + nativeConceptT + `)[]`},
		},
		tables: []nativeTable{
			{name: "observation", column: "effective_start", key: "effective_year", query: `SELECT id,
				` + nativeTimestamp("meta.lastUpdated") + ` AS meta_last_updated,
				status,
				` + nativeCode(nativeCodings("category"), "c.system = 'http://terminology.hl7.org/CodeSystem/observation-category'", "code") + ` AS category_code,
				` + nativeCode("code.coding", loinc, "code") + ` AS code,
				` + nativeCode("code.coding", loinc, "display") + ` AS code_display,
				` + nativeRefKey("subject", "Patient") + ` AS patient_id,
				` + nativeRefKey("encounter", "Encounter") + ` AS encounter_id,
				-- (effective.ofType(dateTime) | effective.ofType(instant) | effective.ofType(Period).start).first()
				` + nativeTimestamp("coalesce(effectiveDateTime, effectiveInstant, effectivePeriod.start)") + ` AS effective_start,
				valueQuantity."value" AS value_quantity,
				coalesce(valueQuantity.unit, valueQuantity.code) AS value_unit,
				` + nativeCode("valueCodeableConcept.coding", "", "code") + ` AS value_code,
				valueString AS value_string,
				valueBoolean AS value_boolean,
				` + nativeCode(nativeCodings("interpretation"), "c.system = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation'", "code") + ` AS interpretation_code
			FROM raw_observation`},
			{name: "observation_component", query: `SELECT id AS observation_id, idx,
				` + nativeCode("el.code.coding", loinc, "code") + ` AS code,
				el.valueQuantity."value" AS value_quantity,
				coalesce(el.valueQuantity.unit, el.valueQuantity.code) AS value_unit,
				` + nativeCode("el.valueCodeableConcept.coding", "", "code") + ` AS value_code
			FROM ` + nativeUnnest("raw_observation", "component")},
		},
	}
}

// nativeUnnest is a subquery of one row per element of the list member of
// from (the forEach of a view): the columns keep of from (the resource's id
// when keep is empty), the element as el and its 0-based position as idx
// (the view's %rowIndex). A resource whose list is missing or empty gives
// no row.
func nativeUnnest(from, list string, keep ...string) string {
	if len(keep) == 0 {
		keep = []string{"id"}
	}
	l := nativeIdent(list)
	return fmt.Sprintf("(SELECT %[3]s, unnest(%[1]s) AS el, CAST(generate_subscripts(%[1]s, 1) - 1 AS INTEGER) AS idx FROM %[2]s)",
		l, from, strings.Join(keep, ", "))
}

// nativeCode is FHIRPath's codings.where(cond).field.first(): the field of
// the first coding (c in cond) that satisfies cond and has that field. An
// empty cond keeps every coding.
func nativeCode(codings, cond, field string) string {
	keep := "c." + field + " IS NOT NULL"
	if cond != "" {
		keep = "(" + cond + ") AND " + keep
	}
	return fmt.Sprintf("list_filter(%s, lambda c: %s)[1].%s", codings, keep, field)
}

// nativeFirst is FHIRPath's list.where(cond).field.first() over a list of
// structs (x in cond): the field of the first element that satisfies cond
// and has that field.
func nativeFirst(list, cond, field string) string {
	keep := "x." + field + " IS NOT NULL"
	if cond != "" {
		keep = "(" + cond + ") AND " + keep
	}
	return fmt.Sprintf("list_filter(%s, lambda x: %s)[1].%s", list, keep, field)
}

// nativeFirstValue is FHIRPath's first() over a list of values: the first
// that is not null.
func nativeFirstValue(list string) string {
	return fmt.Sprintf("list_filter(%s, lambda v: v IS NOT NULL)[1]", list)
}

// nativeHas is FHIRPath's codings.exists(cond), with c in cond.
func nativeHas(codings, cond string) string {
	return fmt.Sprintf("len(list_filter(%s, lambda c: %s)) > 0", codings, cond)
}

// nativeInfo is FHIRPath's
// supportingInfo.where(category.coding.exists(code in categories)).code.coding[.where(cond)].field.first():
// the first field of the codes of the supporting information of those
// categories.
func nativeInfo(categories []string, cond, field string) string {
	var in []string
	for _, c := range categories {
		in = append(in, "'"+c+"'")
	}
	keep := "c." + field + " IS NOT NULL"
	if cond != "" {
		keep = "(" + cond + ") AND " + keep
	}
	return nativeFirstValue(fmt.Sprintf("flatten(list_transform(list_filter(supportingInfo, lambda x: %s), lambda x: list_transform(list_filter(x.code.coding, lambda c: %s), lambda c: c.%s)))",
		nativeHas("x.category.coding", "c.code IN ("+strings.Join(in, ", ")+")"), keep, field))
}

// nativeCodings is the codings of a list of CodeableConcepts, in order
// (FHIRPath's concepts.coding).
func nativeCodings(concepts string) string {
	return fmt.Sprintf("flatten(list_transform(%s, lambda x: x.coding))", concepts)
}

// nativeSystemIn is the condition that a coding c is of one of systems.
func nativeSystemIn(systems ...string) string {
	return "c.system IN (" + nativeList(systems) + ")"
}

// nativeAmount is FHIRPath's list.where(cond).amount.value.first() over
// adjudications or totals (a in cond).
func nativeAmount(list, cond string) string {
	return fmt.Sprintf(`list_filter(%s, lambda a: (%s) AND a.amount."value" IS NOT NULL)[1].amount."value"`, list, cond)
}

// nativeOMB is the US Core race or ethnicity code of a Patient:
// extension(url).extension('ombCategory').value.ofType(Coding).code.first().
func nativeOMB(url string) string {
	return fmt.Sprintf(`list_filter(flatten(list_transform(list_filter(extension, lambda e: e.url = '%s'), lambda e: e.extension)), `+
		`lambda o: o.url = 'ombCategory' AND o.valueCoding.code IS NOT NULL)[1].valueCoding.code`, url)
}

// nativeRefKey is FHIRPath's ref.getReferenceKey(typ) (getReferenceKey()
// when typ is ""): the id of a literal reference. "Type/id", an absolute
// URL ending in Type/id and either with /_history/n give id, when Type is
// typ; urn:uuid: and urn:oid: references give what follows the prefix, and
// only without typ; a contained reference (#id) gives nothing.
func nativeRefKey(ref, typ string) string {
	r := ref + ".reference"
	// h is the reference without its /_history/ suffix.
	h := fmt.Sprintf("CASE WHEN contains(%[1]s, '/_history/') THEN left(%[1]s, strpos(%[1]s, '/_history/') - 1) ELSE %[1]s END", r)
	id := fmt.Sprintf("nullif(split_part(%s, '/', -1), '')", h)
	if typ == "" {
		return fmt.Sprintf("CASE WHEN starts_with(%[1]s, '#') THEN NULL "+
			"WHEN starts_with(%[1]s, 'urn:uuid:') THEN %[1]s[10:] "+
			"WHEN starts_with(%[1]s, 'urn:oid:') THEN %[1]s[9:] "+
			"WHEN contains(%[2]s, '/') THEN %[3]s END", r, h, id)
	}
	return fmt.Sprintf("CASE WHEN starts_with(%[1]s, '#') OR starts_with(%[1]s, 'urn:uuid:') OR starts_with(%[1]s, 'urn:oid:') THEN NULL "+
		"WHEN contains(%[2]s, '/') AND split_part(%[2]s, '/', -2) = '%[4]s' THEN %[3]s END", r, h, id, typ)
}

// nativeDate converts a FHIR date (or the date part of a dateTime) to a
// DATE: a partial date is its first day, anything else not a date is
// null.
func nativeDate(s string) string {
	return fmt.Sprintf("TRY_CAST(CASE WHEN strlen(%[1]s) = 10 THEN %[1]s WHEN %[1]s[11] = 'T' THEN %[1]s[1:10] "+
		"WHEN strlen(%[1]s) = 7 THEN %[1]s || '-01' WHEN strlen(%[1]s) = 4 THEN %[1]s || '-01-01' END AS DATE)", s)
}

// nativeTimestamp converts a FHIR dateTime or instant to a TIMESTAMPTZ:
// a partial value is its first instant, a value without a zone is UTC (the
// session's time zone, see NativeStatements), anything else is null.
func nativeTimestamp(s string) string {
	return fmt.Sprintf("TRY_CAST(CASE strlen(%[1]s) WHEN 4 THEN %[1]s || '-01-01' WHEN 7 THEN %[1]s || '-01' ELSE %[1]s END AS TIMESTAMPTZ)", s)
}

// nativeColumnsArg renders cols as read_ndjson's columns argument.
func nativeColumnsArg(cols [][2]string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = nativeString(c[0]) + ": " + nativeString(c[1])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// nativeList renders values as a list of SQL strings.
func nativeList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = nativeString(v)
	}
	return strings.Join(q, ", ")
}

// nativeString quotes s as a SQL string.
func nativeString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// nativeIdent quotes s as a SQL identifier.
func nativeIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
