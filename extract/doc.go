// Package extract drives the HL7 FHIR Bulk Data $export lifecycle against a
// payer API: it obtains bearer tokens, kicks off an export, polls the status
// URL until the manifest is ready, and downloads and verifies every output
// file. It knows nothing about Arrow, Parquet or DuckDB: its product is a
// directory of NDJSON files and the manifest that describes them.
package extract
