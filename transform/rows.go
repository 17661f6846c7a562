package transform

import (
	"errors"
	"fmt"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// ErrWhereNotBoolean is returned when a view's where path yields something
// other than a boolean.
var ErrWhereNotBoolean = errors.New("where path is not boolean")

// ErrNotCollection is reported when a column without collection: true
// receives more than one value.
var ErrNotCollection = errors.New("more than one value for a column that is not a collection")

// row holds one output row: a collection per view column, nil for null.
type row []fhirpath.Collection

// evalState is the per-goroutine state of evaluating one view.
type evalState struct {
	view *View
	ctx  fhirpath.Context
	// cellError is called for a cell whose value breaks the column's
	// rules; the cell is nulled. Returning an error aborts the resource.
	cellError func(col int, err error) error
	// cells is carved into rows; reused from one resource to the next.
	cells []fhirpath.Collection
	// rowIndexes[i] is the collection {i}, for %rowIndex.
	rowIndexes []fhirpath.Collection
	// focus holds the resource being evaluated, the focus of the root
	// select; lists is carved into the row lists of selects. Both are
	// reused from one resource to the next.
	focus fhirpath.Collection
	lists []row
}

func newEvalState(v *View, cellError func(int, error) error) *evalState {
	consts := make(map[string]fhirpath.Collection, len(v.constants)+1)
	for k, c := range v.constants {
		consts[k] = c
	}
	return &evalState{view: v, ctx: fhirpath.Context{Constants: consts, Keys: v.keys}, cellError: cellError}
}

// rows evaluates the view over one resource. It returns no rows when a
// where path is not true.
func (s *evalState) rows(res fhirpath.Value) ([]row, error) {
	ok, err := s.begin(res)
	if !ok || err != nil {
		return nil, err
	}
	return s.run(s.view.root, s.focus, 0)
}

// begin starts the evaluation of the view over res: the focus is set and
// the view's where paths are checked. ok is false when one is not true.
func (s *evalState) begin(res fhirpath.Value) (ok bool, err error) {
	s.ctx.Reset()
	s.cells = s.cells[:0]
	s.lists = s.lists[:0]
	s.ctx.Resource = res
	s.setRowIndex(0)
	s.focus = append(s.focus[:0], res)
	s.focus = s.focus[:1:1]
	for _, w := range s.view.where {
		c, err := w.Eval(&s.ctx, s.focus)
		if err != nil {
			return false, fmt.Errorf("where %s: %w", w, err)
		}
		if len(c) == 0 {
			return false, nil
		}
		if len(c) > 1 || c[0].Kind() != fhirpath.KindBoolean {
			return false, fmt.Errorf("where %s: %w", w, ErrWhereNotBoolean)
		}
		if !c[0].Bool() {
			return false, nil
		}
	}
	return true, nil
}

// newRow returns an empty row, valid until the next call of rows.
func (s *evalState) newRow() row {
	n := len(s.view.columns)
	if cap(s.cells)-len(s.cells) < n {
		s.cells = make([]fhirpath.Collection, 0, max(64*n, 2*cap(s.cells)))
	}
	l := len(s.cells)
	s.cells = s.cells[:l+n]
	r := row(s.cells[l : l+n : l+n])
	clear(r)
	return r
}

// oneRow returns the list {r}, valid until the next call of rows.
func (s *evalState) oneRow(r row) []row {
	return append(s.rowList(1), r)
}

// rowList returns an empty list of rows with room for n, valid until the
// next call of rows: carved from lists, like the rows from cells, so that
// a resource's lists of rows cost no allocation once lists has grown to
// its size (appending beyond n allocates).
func (s *evalState) rowList(n int) []row {
	if cap(s.lists)-len(s.lists) < n {
		s.lists = make([]row, 0, max(64, 2*cap(s.lists), n))
	}
	l := len(s.lists)
	s.lists = s.lists[:l+n]
	return s.lists[l : l : l+n]
}

// setRowIndex sets %rowIndex when the view uses it.
func (s *evalState) setRowIndex(i int) {
	if !s.view.usesRowIndex {
		return
	}
	for len(s.rowIndexes) <= i {
		s.rowIndexes = append(s.rowIndexes, fhirpath.Collection{fhirpath.Integer(int64(len(s.rowIndexes)))})
	}
	s.ctx.Constants["rowIndex"] = s.rowIndexes[i]
}

// run produces the rows of one select over a focus item.
// The focus is one item, or empty for the null row of forEachOrNull.
func (s *evalState) run(sp *selectPlan, focus fhirpath.Collection, rowIndex int) ([]row, error) {
	// The foci are the items of many (each one alone), or focus itself:
	// picked by index, so a select over many items allocates no list of
	// them.
	var many fhirpath.Collection
	n, iterated := 1, false
	switch {
	case sp.forEach != nil:
		c, err := sp.forEach.Eval(&s.ctx, focus)
		if err != nil {
			return nil, err
		}
		many, n, iterated = c, len(c), true
		if n == 0 && sp.orNull {
			n = 1 // the null row
		}
	case len(sp.repeat) > 0:
		var c fhirpath.Collection
		for _, f := range focus {
			var err error
			if c, err = s.repeat(sp.repeat, f, c, 0); err != nil {
				return nil, err
			}
		}
		many, n, iterated = c, len(c), true
	}
	var out []row
	for i := range n {
		f, idx := focus, rowIndex
		if iterated {
			f, idx = nil, i
			if i < len(many) {
				f = many[i : i+1 : i+1]
			}
		}
		base := s.newRow()
		s.setRowIndex(idx)
		for _, cp := range sp.columns {
			c, err := cp.expr.Eval(&s.ctx, f)
			if err != nil {
				return nil, err
			}
			if !cp.collection && len(c) > 1 {
				if err := s.cellError(cp.idx, ErrNotCollection); err != nil {
					return nil, err
				}
				c = nil
			}
			base[cp.idx] = c
		}
		partial := s.oneRow(base)
		for _, sub := range sp.selects {
			rows, err := s.run(sub, f, idx)
			if err != nil {
				return nil, err
			}
			partial = s.cross(partial, rows)
		}
		if len(sp.unionAll) > 0 {
			var union []row
			for _, u := range sp.unionAll {
				rows, err := s.run(u, f, idx)
				if err != nil {
					return nil, err
				}
				union = append(union, rows...)
			}
			partial = s.cross(partial, union)
		}
		if n == 1 {
			return partial, nil
		}
		if out == nil {
			// Sized for every focus giving as many rows as the first.
			out = s.rowList(n * len(partial))
		}
		out = append(out, partial...)
	}
	return out, nil
}

// maxRepeatDepth bounds repeat recursion over cyclic or hostile data.
const maxRepeatDepth = 64

// repeat collects, depth first, the items reached by applying the paths
// again and again from focus.
func (s *evalState) repeat(paths []*fhirpath.Expr, focus fhirpath.Value, out fhirpath.Collection, depth int) (fhirpath.Collection, error) {
	if depth > maxRepeatDepth {
		return nil, errors.New("repeat nested too deeply")
	}
	for _, p := range paths {
		c, err := p.Eval(&s.ctx, fhirpath.Collection{focus})
		if err != nil {
			return nil, err
		}
		for _, item := range c {
			out = append(out, item)
			if out, err = s.repeat(paths, item, out, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// cross returns every combination of a row from a and one from b. The two
// sides fill disjoint columns.
func (s *evalState) cross(a, b []row) []row {
	if len(b) == 1 {
		for _, r := range a {
			merge(r, b[0])
		}
		return a
	}
	out := s.rowList(len(a) * len(b))
	for _, x := range a {
		for _, y := range b {
			r := s.newRow()
			copy(r, x)
			merge(r, y)
			out = append(out, r)
		}
	}
	return out
}

func merge(dst, src row) {
	for i, c := range src {
		if c != nil {
			dst[i] = c
		}
	}
}
