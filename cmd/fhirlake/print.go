package main

import (
	"database/sql"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printRows writes a query result as an aligned text table.
func printRows(w io.Writer, rows *sql.Rows) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			cells[i] = formatCell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

func formatCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}
