-- claim_providers: who billed, rendered, housed and prescribed each claim,
-- with their NPIs and TINs, in one place for claim_lines,
-- tuva.medical_claim, pharmacy_claims and tuva.pharmacy_claim.
--
-- Row: one claim (an ExplanationOfBenefit of any type).
-- Grain: (data_source, claim_id).
--
-- Caveats:
--  * A provider's NPI and TIN are those the claim carries (on the
--    reference, or on the Organization contained in the claim that it
--    names, as CMS sends them), else those of the Organization or
--    Practitioner resource it references at the claim's source (the
--    organization and practitioner tables): a payer that references
--    providers by id only gets them filled once its export includes
--    Organization and Practitioner.
--  * billing: the claim's provider (for a pharmacy claim, the dispensing
--    pharmacy). rendering: the care team's rendering, else performing,
--    else attending, else primary provider (lowest sequence within a
--    role) that has an NPI. attending, referring and prescribing: the care
--    team's member of that role with an NPI, lowest sequence.
--  * facility_npi is the facility's NPI, from the reference or the
--    Organization it names; a facility that is a Location has none.
--  * TINs are kept as sent (with or without the dash).
CREATE OR REPLACE VIEW claim_providers AS
WITH team AS (
    -- Care team members, hydrated: a Practitioner reference first, an
    -- Organization otherwise.
    SELECT t.data_source, t.eob_id, t.sequence, t.role_code,
        coalesce(t.provider_npi, pr.npi, o.npi) AS npi,
        coalesce(pr.tin, o.tin)                 AS tin
    FROM main.eob_care_team AS t
    LEFT JOIN main.practitioner AS pr ON pr.data_source = t.data_source AND pr.id = t.provider_id
    LEFT JOIN main.organization AS o ON o.data_source = t.data_source AND o.id = t.provider_id AND pr.id IS NULL
),
roles AS (
    SELECT data_source, eob_id,
        arg_min({'npi': npi, 'tin': tin}, (CASE role_code
                                                WHEN 'rendering' THEN 1
                                                WHEN 'performing' THEN 2
                                                WHEN 'attending' THEN 3
                                                WHEN 'primary' THEN 4
                                            END, sequence))
            FILTER (WHERE role_code IN ('rendering', 'performing', 'attending', 'primary')) AS rendering,
        arg_min(npi, sequence) FILTER (WHERE role_code = 'attending')   AS attending_npi,
        arg_min(npi, sequence) FILTER (WHERE role_code = 'referring')   AS referring_npi,
        arg_min(npi, sequence) FILTER (WHERE role_code = 'prescribing') AS prescribing_npi
    FROM team
    WHERE npi IS NOT NULL
    GROUP BY data_source, eob_id
)
SELECT
    e.data_source,
    e.id                                            AS claim_id,
    e.provider_id                                   AS billing_provider_id,
    coalesce(e.provider_npi, bo.npi, bp.npi)        AS billing_npi,
    coalesce(e.provider_tin, bo.tin, bp.tin)        AS billing_tin,
    r.rendering.npi                                 AS rendering_npi,
    r.rendering.tin                                 AS rendering_tin,
    r.attending_npi,
    r.referring_npi,
    r.prescribing_npi,
    coalesce(e.facility_npi, fo.npi)                AS facility_npi
FROM main.eob AS e
LEFT JOIN main.organization AS bo ON bo.data_source = e.data_source AND bo.id = e.provider_id
LEFT JOIN main.practitioner AS bp ON bp.data_source = e.data_source AND bp.id = e.provider_id AND bo.id IS NULL
LEFT JOIN main.organization AS fo ON fo.data_source = e.data_source AND fo.id = e.facility_id
LEFT JOIN roles AS r ON r.data_source = e.data_source AND r.eob_id = e.id;
