// The generator of internal/fhirtypes/elements_r4.txt is a module of its
// own, so that the FHIR model it reads is no dependency of fhirlake.
module github.com/fhirlake/fhirlake/internal/fhirtypes/gen

go 1.24

require github.com/samply/golang-fhir-models/fhir-models v0.3.2
