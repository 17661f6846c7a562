package iceberg_test

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain quiets iceberg-go's warnings (an overwrite that removes more
// rows than it adds is a delete here, not a mistake), as the CLI does.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
