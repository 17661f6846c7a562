// Package schemas holds the built-in tables of fhirlake as SQL-on-FHIR v2
// ViewDefinitions, one JSON file a table, embedded in the binary.
package schemas

import "embed"

// FS holds the built-in ViewDefinition files (*.json).
//
//go:embed *.json
var FS embed.FS
