package transform

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Markdown documents views as a Markdown page: for each table its source
// resource, key, description, and every column with its warehouse type,
// FHIRPath and meaning. schemas/README.md is generated with it, and a test
// keeps the file in step with the views.
func Markdown(views []*View) string {
	var b strings.Builder
	b.WriteString("# Built-in tables\n\n")
	b.WriteString("Generated from the ViewDefinitions in this folder by `go test ./schemas -update`;\n")
	b.WriteString("a test fails when this page and the views disagree. Types are the DuckDB column types;\n")
	b.WriteString("`[]` marks a list column. Dates hold the low boundary of a partial date; timestamps are UTC.\n\n")
	b.WriteString(sourceNote)
	b.WriteString(tagNote)
	b.WriteString("| table | resource | rows are keyed by |\n|---|---|---|\n")
	for _, v := range views {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | `data_source` + `%s` |\n", v.Name(), v.Name(), v.Resource(), keyOf(v))
	}
	b.WriteString("| [`person`](#person) | (derived) | `data_source` + `patient_id` |\n")
	for _, v := range views {
		fmt.Fprintf(&b, "\n## %s\n\n", v.Name())
		if d := v.Description(); d != "" {
			b.WriteString(strings.TrimSpace(d) + "\n\n")
		}
		fmt.Fprintf(&b, "From `%s`; all rows of a resource are replaced together, by `%s`.", v.Resource(), v.KeyColumn())
		for _, c := range v.Columns() {
			if key, ok := c.Tags[TagPartition]; ok {
				fmt.Fprintf(&b, " In the lake, split by source and by the year of `%s` in UTC (`%s=`).", c.Name, key)
			}
			if c.Tags[TagMember] == "new" {
				fmt.Fprintf(&b, " A `%s` new to a source is a member whose whole history an incremental run back-fills.", c.Name)
			}
		}
		b.WriteString("\n\n")
		b.WriteString("| column | type | FHIRPath | meaning |\n|---|---|---|---|\n")
		b.WriteString(dataSourceRow)
		for i, c := range v.Columns() {
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", c.Name, sqlType(v.Schema().Field(i).Type),
				escapeCell(c.Path), escapeCell(c.Description))
		}
	}
	b.WriteString(personSection)
	return b.String()
}

// sourceNote, dataSourceRow and personSection document what the warehouse
// adds to every view's table: the source of each row, and the crosswalk.
const (
	sourceNote = "Every table starts with `data_source`, the name of the source (payer, tenant) whose run\n" +
		"loaded the row. Resource ids are unique only within one server, so a row's identity is its\n" +
		"source, resource type and id: keys, newest-wins, deletes and references between tables all\n" +
		"hold within one source. Join tables on `data_source` as well as the id.\n\n"
	tagNote = "A view says in its JSON what a column means to the warehouse and the lake, with column tags:\n" +
		"`fhirlake/partition` (value: the Hive key, such as `service_year`) on a date or dateTime column\n" +
		"splits the table in the lake by that column's year; `fhirlake/member` with the value `new` on a\n" +
		"column of Patient ids marks members whose whole history an incremental run back-fills when they\n" +
		"first appear. Your own views in `--views` may carry them too. A column's FHIR `type` counts as\n" +
		"well: a single-valued `code` or `uri` column holds a few distinct values (codes bound to value\n" +
		"sets, code systems), and the warehouse stores it dictionary-encoded; type a column of\n" +
		"identifiers or free text `id` or `string`.\n\n"
	dataSourceRow = "| `data_source` | VARCHAR | | The source whose run loaded the row; first in the primary key. |\n"
	personSection = `
## person

The person crosswalk: one row per patient of every source, linking the Patients of one human
at several sources by strong identifiers only. Rebuilt at each commit that changes patients,
their identifiers or the Payer-to-Payer matches.

Two patients of different sources are one person when they share the Medicare MBI
(` + "`http://hl7.org/fhir/sid/us-mbi`" + `, compared upper-case without dashes), a value of a
configured identifier system (` + "`person.identifier_systems`" + `, ` + "`--person-identifier-system`" + `), or
a Payer-to-Payer match: the old payer's Patient that ` + "`$member-match`" + ` returned is the roster's
member, whose own number (the roster's ` + "`coverage_to_link`" + `) is a value of
` + "`person.roster_member_system`" + `. Links are transitive. Names, birth dates and addresses
never link. An identifier held by two patients of one source links nobody, and a chain of
links that would make two patients of one source one person is not merged; both are
listed in ` + "`fhirlake_person_conflicts`" + ` (source, patient, identifier system, reason; never the
value) and counted by ` + "`fhirlake status`" + ` and the run summary (` + "`person_conflicts`" + `).

| column | type | meaning |
|---|---|---|
| ` + "`data_source`" + ` | VARCHAR | The patient's source. |
| ` + "`patient_id`" + ` | VARCHAR | The Patient's id at that source. |
| ` + "`person_id`" + ` | VARCHAR | ` + "`p-`" + ` and 16 hex digits, shared by every patient of one person. It is derived from the least (source, patient) of the person, so it stays as long as that record does. A patient without links has its own; views give a claim whose Patient was not exported the same id its Patient would have. |
`
)

func keyOf(v *View) string {
	if v.KeyColumn() == "id" {
		return "id"
	}
	return v.KeyColumn() + " + position"
}

func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// sqlType names the DuckDB type an Arrow type lands as.
func sqlType(t arrow.DataType) string {
	switch t := t.(type) {
	case *arrow.StringType:
		return "VARCHAR"
	case *arrow.BooleanType:
		return "BOOLEAN"
	case *arrow.Int32Type:
		return "INTEGER"
	case *arrow.Int64Type:
		return "BIGINT"
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.Date32Type:
		return "DATE"
	case *arrow.TimestampType:
		return "TIMESTAMPTZ"
	case *arrow.ListType:
		return sqlType(t.Elem()) + "[]"
	default:
		return t.String()
	}
}
