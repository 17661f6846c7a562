package load_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/warehousetest"
)

// TestMemoryRunOfSeveralExports: the fake keeps the contract of a run of
// several exports (warehousetest).
func TestMemoryRunOfSeveralExports(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	warehousetest.RunOfSeveralExports(t, load.NewMemory(), []load.Table{{Name: "claim", Resource: "Claim", Key: "id", Schema: schema}})
}

// TestMemoryDeletedAndCarriedAgain: the fake takes a version a run carries
// with its own tombstone (warehousetest).
func TestMemoryDeletedAndCarriedAgain(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	warehousetest.DeletedAndCarriedAgain(t, load.NewMemory(), []load.Table{{Name: "claim", Resource: "Claim", Key: "id", Schema: schema}})
}
