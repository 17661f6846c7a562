package sandbox

// Code systems, as the CARIN BB v1.1 and CMS examples spell them.
const (
	sysICD10CM              = "http://hl7.org/fhir/sid/icd-10-cm"
	sysICD10PCS             = "http://www.cms.gov/Medicare/Coding/ICD10"
	sysCPT                  = "http://www.ama-assn.org/go/cpt"
	sysHCPCS                = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
	sysNDC                  = "http://hl7.org/fhir/sid/ndc"
	sysRevenue              = "https://www.nubc.org/CodeSystem/RevenueCodes"
	sysPOS                  = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
	sysNPI                  = "http://hl7.org/fhir/sid/us-npi"
	sysC4BBAdjDiscriminator = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"
	sysC4BBPayerAdjStatus   = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus"
	sysTIN                  = "urn:oid:2.16.840.1.113883.4.4" // IRS taxpayer identification numbers
	sysLOINC                = "http://loinc.org"
	sysSNOMED               = "http://snomed.info/sct"
	sysUCUM                 = "http://unitsofmeasure.org"
	sysV2_0203              = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysActCode              = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysClaimType            = "http://terminology.hl7.org/CodeSystem/claim-type"
	sysAdjudication         = "http://terminology.hl7.org/CodeSystem/adjudication"
	sysC4BBAdj              = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
	sysC4BBInstSub          = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"
	sysC4BBDxType           = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType"
	sysExDxType             = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
	sysC4BBProcType         = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimProcedureType"
	sysC4BBRole             = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"
	sysC4BBIDType           = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
	sysC4BBSupport          = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
	sysCovClass             = "http://terminology.hl7.org/CodeSystem/coverage-class"
	sysObsCategory          = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysOMB                  = "urn:oid:2.16.840.1.113883.6.238"
	sysAbsent               = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
)

// Profiles.
const (
	profPatient      = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient|1.1.0"
	profCoverage     = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Coverage|1.1.0"
	profEOBProf      = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Professional-NonClinician|1.1.0"
	profEOBInpatient = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|1.1.0"
	profEOBOutpat    = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Outpatient-Institutional|1.1.0"
	profEOBPharmacy  = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy|1.1.0"
	profOrganization = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Organization|1.1.0"
	profPractitioner = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Practitioner|1.1.0"
	profEncounter    = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"
	profCondition    = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"
	profLab          = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
	profBP           = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
	profGroup        = "http://hl7.org/fhir/us/davinci-atr/StructureDefinition/atr-group"
)

type code struct{ code, display string }

type pricedCode struct {
	system, code, display string
	cents                 int64 // typical billed charge
}

var (
	givenFemale = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Susan", "Jessica", "Sarah", "Karen", "Nancy", "Lisa", "Margaret", "Ashley", "Emily", "Maria", "Olivia", "Grace", "Hannah"}
	givenMale   = []string{"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Luis", "Kevin", "Ethan", "Noah"}
	families    = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Nguyen", "Olson", "Larson", "Peterson", "Hansen"}

	places = []struct{ city, state, zip string }{
		{"Fargo", "ND", "58102"}, {"Bismarck", "ND", "58501"}, {"Sioux Falls", "SD", "57104"},
		{"Rapid City", "SD", "57701"}, {"Minneapolis", "MN", "55407"}, {"Duluth", "MN", "55803"},
		{"Billings", "MT", "59101"}, {"Moorhead", "MN", "56560"},
	}
	streets = []string{"Main Street", "Prairie Avenue", "Bison Trail", "Oak Street", "2nd Avenue N", "Lakeview Drive", "Elm Street", "Railway Road"}

	// OMB race and ethnicity categories (CDC Race & Ethnicity, urn:oid:2.16.840.1.113883.6.238).
	races = []code{
		{"2106-3", "White"}, {"2054-5", "Black or African American"}, {"2028-9", "Asian"},
		{"1002-5", "American Indian or Alaska Native"}, {"2076-8", "Native Hawaiian or Other Pacific Islander"},
	}
	raceWeights = []int{70, 10, 6, 12, 2}
	hispanic    = code{"2135-2", "Hispanic or Latino"}
	nonHispanic = code{"2186-5", "Not Hispanic or Latino"}

	chronicDx = []code{
		{"E11.9", "Type 2 diabetes mellitus without complications"},
		{"I10", "Essential (primary) hypertension"},
		{"E78.5", "Hyperlipidemia, unspecified"},
		{"J44.9", "Chronic obstructive pulmonary disease, unspecified"},
		{"F41.1", "Generalized anxiety disorder"},
	}
	chronicRate = []float64{0.14, 0.3, 0.25, 0.06, 0.08}

	officeDx = []code{
		{"J06.9", "Acute upper respiratory infection, unspecified"},
		{"M54.50", "Low back pain, unspecified"},
		{"N39.0", "Urinary tract infection, site not specified"},
		{"Z00.00", "Encounter for general adult medical examination without abnormal findings"},
		{"J02.9", "Acute pharyngitis, unspecified"},
		{"R51.9", "Headache, unspecified"},
	}
	edDx = []code{
		{"R07.9", "Chest pain, unspecified"},
		{"R10.9", "Unspecified abdominal pain"},
		{"S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"},
		{"S01.81XA", "Laceration without foreign body of other part of head, initial encounter"},
		{"J45.901", "Unspecified asthma with (acute) exacerbation"},
	}
	// inpatientDx pairs an admitting diagnosis with its principal ICD-10-PCS procedure.
	inpatientDx = []struct{ dx, proc code }{
		{code{"I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"}, code{"027034Z", "Dilation of Coronary Artery, One Artery with Drug-eluting Intraluminal Device, Percutaneous Approach"}},
		{code{"J18.9", "Pneumonia, unspecified organism"}, code{"BW03ZZZ", "Plain Radiography of Chest"}},
		{code{"K35.80", "Unspecified acute appendicitis"}, code{"0DTJ4ZZ", "Resection of Appendix, Percutaneous Endoscopic Approach"}},
		{code{"M17.11", "Unilateral primary osteoarthritis, right knee"}, code{"0SRC0J9", "Replacement of Right Knee Joint with Synthetic Substitute, Cemented, Open Approach"}},
		{code{"I50.9", "Heart failure, unspecified"}, code{"4A023N7", "Measurement of Cardiac Sampling and Pressure, Left Heart, Percutaneous Approach"}},
	}

	officeEM = []pricedCode{
		{sysCPT, "99213", "Office or other outpatient visit, established patient, low complexity", 11000},
		{sysCPT, "99214", "Office or other outpatient visit, established patient, moderate complexity", 16500},
		{sysCPT, "99396", "Periodic comprehensive preventive medicine, established patient, 40-64 years", 21000},
	}
	officeAncillary = []pricedCode{
		{sysCPT, "36415", "Collection of venous blood by venipuncture", 1000},
		{sysCPT, "83036", "Hemoglobin; glycosylated (A1C)", 2500},
		{sysCPT, "80061", "Lipid panel", 3500},
		{sysCPT, "80053", "Comprehensive metabolic panel", 3000},
		{sysCPT, "81002", "Urinalysis, non-automated, without microscopy", 800},
		{sysCPT, "93000", "Electrocardiogram, routine ECG with at least 12 leads", 4000},
		{sysCPT, "90686", "Influenza virus vaccine, quadrivalent, split virus, preservative free", 2500},
		{sysHCPCS, "G0008", "Administration of influenza virus vaccine", 2800},
	}
	edEM = []pricedCode{
		{sysCPT, "99283", "Emergency department visit, moderate severity", 28000},
		{sysCPT, "99284", "Emergency department visit, high severity", 45000},
		{sysCPT, "99285", "Emergency department visit, high severity with threat to life", 70000},
	}
	// Institutional lines: revenue code and, where one applies, a HCPCS/CPT code.
	edLines = []struct {
		rev  code
		proc pricedCode
	}{
		{code{"0300", "Laboratory - general"}, pricedCode{sysCPT, "80053", "Comprehensive metabolic panel", 9000}},
		{code{"0320", "Radiology - diagnostic - general"}, pricedCode{sysCPT, "71046", "Radiologic examination, chest; 2 views", 24000}},
		{code{"0730", "EKG/ECG - general"}, pricedCode{sysCPT, "93005", "Electrocardiogram, tracing only", 15000}},
		{code{"0636", "Drugs requiring detailed coding"}, pricedCode{sysHCPCS, "J1885", "Injection, ketorolac tromethamine, per 15 mg", 6000}},
		{code{"0250", "Pharmacy - general"}, pricedCode{sysHCPCS, "J7030", "Infusion, normal saline solution, 1000 cc", 11000}},
	}
	inpatientLines = []struct {
		rev  code
		proc pricedCode
	}{
		{code{"0300", "Laboratory - general"}, pricedCode{sysCPT, "85025", "Complete blood count with automated differential", 7000}},
		{code{"0320", "Radiology - diagnostic - general"}, pricedCode{sysCPT, "71046", "Radiologic examination, chest; 2 views", 26000}},
		{code{"0250", "Pharmacy - general"}, pricedCode{sysHCPCS, "J0696", "Injection, ceftriaxone sodium, per 250 mg", 9000}},
		{code{"0360", "Operating room services - general"}, pricedCode{cents: 450000}}, // no HCPCS: data-absent
	}
	roomAndBoard      = code{"0120", "Room and board - semi-private two beds"}
	roomAndBoardCents = int64(250000) // a day

	drugs = []struct {
		ndc, display string
		cents        int64
		forDx        string // chronic diagnosis it treats
	}{
		{"00093104801", "Metformin hydrochloride 500 MG Oral Tablet", 1200, "E11.9"},
		{"68180051301", "Lisinopril 10 MG Oral Tablet", 900, "I10"},
		{"00069152066", "Amlodipine 5 MG Oral Tablet", 1500, "I10"},
		{"00071015523", "Atorvastatin 20 MG Oral Tablet", 2100, "E78.5"},
		{"00173068220", "Fluticasone propionate 250 MCG / salmeterol 50 MCG Inhalation Powder", 38000, "J44.9"},
		{"00093713656", "Sertraline 50 MG Oral Tablet", 1300, "F41.1"},
	}

	payerPlans = []struct{ plan, planName, group, groupName string }{
		{"PPO-GOLD", "Bison PPO Gold", "BSN-1001", "Prairie Schools District"},
		{"HMO-SLV", "Bison HMO Silver", "BSN-2040", "Red River Manufacturing"},
		{"MA-HMO", "Bison Medicare Advantage HMO", "BSN-6500", "Bison Medicare Advantage"},
		{"HDHP-BRZ", "Bison HDHP Bronze", "BSN-3312", "Northern Plains Co-op"},
	}
)
