// Package fhirtypes knows the names of FHIR's resource types, so that a
// line, a view or a setting that names another can be refused.
package fhirtypes

import (
	"maps"
	"slices"
)

// resourceTypes are the FHIR resource type names of R4 (4.0.1), which
// payer APIs serve (CARIN Blue Button, Da Vinci PDex), and those R4B and
// R5 added, so that a server a release ahead is not refused. A line whose
// resourceType is none of them is not a resource anyone can query: it is a
// reject, never a row.
var resourceTypes = map[string]bool{}

func init() {
	for _, t := range []string{
		// R4
		"Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
		"AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
		"BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
		"ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
		"CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition", "Composition",
		"ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
		"CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric",
		"DeviceRequest", "DeviceUseStatement", "DiagnosticReport", "DocumentManifest",
		"DocumentReference", "EffectEvidenceSynthesis", "Encounter", "Endpoint", "EnrollmentRequest",
		"EnrollmentResponse", "EpisodeOfCare", "EventDefinition", "Evidence", "EvidenceVariable",
		"ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal",
		"GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy",
		"Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
		"InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
		"MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
		"MedicationKnowledge", "MedicationRequest", "MedicationStatement", "MedicinalProduct",
		"MedicinalProductAuthorization", "MedicinalProductContraindication",
		"MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
		"MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
		"MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader",
		"MolecularSequence", "NamingSystem", "NutritionOrder", "Observation", "ObservationDefinition",
		"OperationDefinition", "OperationOutcome", "Organization", "OrganizationAffiliation",
		"Parameters", "Patient", "PaymentNotice", "PaymentReconciliation", "Person", "PlanDefinition",
		"Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
		"QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
		"ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
		"RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot", "Specimen",
		"SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription", "Substance",
		"SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
		"SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
		"SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
		"TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
		// R4B and R5
		"ActorDefinition", "AdministrableProductDefinition", "ArtifactAssessment",
		"BiologicallyDerivedProductDispense", "Citation", "ClinicalUseDefinition",
		"ConditionDefinition", "DeviceAssociation", "DeviceDispense", "DeviceUsage",
		"EncounterHistory", "EvidenceReport", "FormularyItem", "GenomicStudy", "ImagingSelection",
		"Ingredient", "InventoryItem", "InventoryReport", "ManufacturedItemDefinition",
		"MedicinalProductDefinition", "NutritionIntake", "NutritionProduct",
		"PackagedProductDefinition", "Permission", "RegulatedAuthorization", "RequestOrchestration",
		"Requirements", "SubscriptionStatus", "SubscriptionTopic", "SubstanceDefinition",
		"TestPlan", "Transport",
	} {
		resourceTypes[t] = true
	}
}

// Is reports whether t names a FHIR resource type (R4 to R5).
func Is(t string) bool { return resourceTypes[t] }

// All lists the FHIR resource types Is knows, sorted.
func All() []string { return slices.Sorted(maps.Keys(resourceTypes)) }
