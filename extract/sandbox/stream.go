package sandbox

import (
	"encoding/json"
	"fmt"
)

// Generate streams the sandbox's synthetic population for cfg (defaults
// applied; the server settings are ignored) to fn, one resource at a time
// as a JSON line without the newline, member by member, in memory bounded
// by one member whatever cfg.Members is: the providers first, then each
// member's resources, then the attribution Groups. The resources are the
// ones New(cfg) serves. Benchmarks use it to write exports of any size.
// It stops at the first error fn returns and returns it.
func Generate(cfg Config, fn func(resourceType string, line []byte) error) error {
	if err := cfg.applyDefaults(); err != nil {
		return err
	}
	return stream(cfg, func(x obj) error {
		if len(x) == 0 || x[0].key != "resourceType" {
			return fmt.Errorf("sandbox: generated a resource without resourceType first")
		}
		line, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		return fn(x[0].val.(string), line)
	})
}
