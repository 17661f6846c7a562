package iceberg

import (
	"database/sql"
	"sync"
	"testing"

	sqlcat "github.com/apache/iceberg-go/catalog/sql"

	"github.com/fhirlake/fhirlake/internal/testserver"
)

// TestCreateLeasesRace: workers that start at once on a new PostgreSQL
// catalog all create the lease table; whichever loses the race (a
// duplicate key, table or type) finds it made, and none fails.
func TestCreateLeasesRace(t *testing.T) {
	pg := testserver.Postgres(t)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	lk := &Lake{db: db, dialect: sqlcat.Postgres}
	for round := range 50 {
		if _, err := db.ExecContext(t.Context(), "DROP TABLE IF EXISTS fhirlake_leases"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = lk.createLeases(t.Context()) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, worker %d: %v", round, i, err)
			}
		}
	}
}
