package conf_test

import (
	"errors"
	"fmt"

	"github.com/twotick/twotick/conf"
)

// Check reports every problem of a file at once, each with its key, line
// and column; printed whole, they are what `twotick check-config` shows
// (see docs/configuration.md).
func ExampleCheck() {
	err := conf.Check("../testdata/conf/bad.toml")
	var problems conf.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Printf("%d:%d %s\n", p.Line, p.Column, p.Key)
		}
	}
	// Output:
	// 5:1 c2s.max_stanza_size
	// 6:1 c2s.idle_timout
	// 7:1 c2s.negotiation_timeout
	// 10:1 auth.default_region
	// 13:1 storage.synchronous
}

// Settings lists the effective configuration, for logging at start.
func ExampleConfig_Settings() {
	for _, s := range conf.Default().Settings()[:4] {
		fmt.Printf("%s=%s\n", s.Key, s.Value)
	}
	// Output:
	// domain=localhost
	// data_dir=.
	// log.level=info
	// log.format=text
}
