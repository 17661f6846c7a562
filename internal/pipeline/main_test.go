package pipeline_test

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain quiets libraries that log to the default logger (iceberg-go),
// as the CLI does.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
