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
	b.WriteString("| table | resource | rows are keyed by |\n|---|---|---|\n")
	for _, v := range views {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | `%s` |\n", v.Name(), v.Name(), v.Resource(), keyOf(v))
	}
	for _, v := range views {
		fmt.Fprintf(&b, "\n## %s\n\n", v.Name())
		if d := v.Description(); d != "" {
			b.WriteString(strings.TrimSpace(d) + "\n\n")
		}
		fmt.Fprintf(&b, "From `%s`; all rows of a resource are replaced together, by `%s`.\n\n", v.Resource(), v.KeyColumn())
		b.WriteString("| column | type | FHIRPath | meaning |\n|---|---|---|---|\n")
		for i, c := range v.Columns() {
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", c.Name, sqlType(v.Schema().Field(i).Type),
				escapeCell(c.Path), escapeCell(c.Description))
		}
	}
	return b.String()
}

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
