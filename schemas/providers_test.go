package schemas_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClaimProviderIdentifiers: the billing provider's NPI and TIN come
// from the provider reference, else from the Organization contained in the
// claim that the reference points at (not any contained Organization), and
// the claim's benefit payment status from its totals or, as C4BB STU2 puts
// it, a benefitpaymentstatus adjudication's reason.
func TestClaimProviderIdentifiers(t *testing.T) {
	const (
		npi  = `{"system":"http://hl7.org/fhir/sid/us-npi","value":"%s"}`
		tin  = `{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"TAX"}]},"system":"urn:oid:2.16.840.1.113883.4.4","value":"%s"}`
		stat = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus"
	)
	f := func(format string, args ...string) string {
		for _, a := range args {
			format = strings.Replace(format, "%s", a, 1)
		}
		return format
	}
	eobs := []string{
		// The reference carries both identifiers.
		`{"resourceType":"ExplanationOfBenefit","id":"on-ref","status":"active","provider":{"reference":"Organization/o1","identifier":[` +
			f(npi, "1000000001") + `,` + f(tin, "11-1111111") + `]},` +
			`"total":[{"category":{"coding":[{"system":"` + stat + `","code":"outofnetwork"}]},"amount":{"value":0}}]}`,
		// CMS style: the provider organization is contained; another
		// contained organization (the facility) must not be taken.
		`{"resourceType":"ExplanationOfBenefit","id":"contained","status":"active",` +
			`"contained":[{"resourceType":"Organization","id":"fac","identifier":[` + f(npi, "3000000003") + `,` + f(tin, "33-3333333") + `]},` +
			`{"resourceType":"Organization","id":"prov","identifier":[` + f(npi, "2000000002") + `,` + f(tin, "22-2222222") + `]}],` +
			`"provider":{"reference":"#prov"},"facility":{"reference":"#fac"},` +
			`"adjudication":[{"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator","code":"benefitpaymentstatus"}]},` +
			`"reason":{"coding":[{"system":"` + stat + `","code":"innetwork"}]}}]}`,
		// Only an id: the organization table has the rest.
		`{"resourceType":"ExplanationOfBenefit","id":"by-id","status":"active","provider":{"reference":"Organization/o9"}}`,
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "eob.ndjson"), []byte(strings.Join(eobs, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := flatten(t, dir)
	check(t, rows, map[string]string{
		"eob|id|on-ref|provider_npi":      `"1000000001"`,
		"eob|id|on-ref|provider_tin":      `"11-1111111"`,
		"eob|id|on-ref|provider_id":       `"o1"`,
		"eob|id|on-ref|network_status":    `"outofnetwork"`,
		"eob|id|contained|provider_npi":   `"2000000002"`,
		"eob|id|contained|provider_tin":   `"22-2222222"`,
		"eob|id|contained|network_status": `"innetwork"`,
		"eob|id|by-id|provider_id":        `"o9"`,
		"eob|id|by-id|provider_npi":       `null`,
		"eob|id|by-id|provider_tin":       `null`,
		"eob|id|by-id|network_status":     `null`,
	})
}
