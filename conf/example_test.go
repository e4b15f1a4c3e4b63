package conf_test

import (
	"fmt"

	"github.com/twotick/twotick/conf"
)

// Check reports every problem of a file at once, each with its line and
// column, as `twotick check-config` prints them.
func ExampleCheck() {
	err := conf.Check("../testdata/conf/bad.toml")
	fmt.Println(err)
	// Output:
	// ../testdata/conf/bad.toml:5:1: c2s.max_stanza_size: must be at least 10000 bytes, got 1024
	// ../testdata/conf/bad.toml:6:1: c2s.idle_timout: unknown key (did you mean "idle_timeout"?)
	// ../testdata/conf/bad.toml:7:1: c2s.negotiation_timeout: must be a duration string such as "30s" or "5m", got integer 30
	// ../testdata/conf/bad.toml:10:1: auth.default_region: must be a two-letter region with a phone numbering plan, such as "US" or "DE", got "UK" (the United Kingdom is "GB")
	// ../testdata/conf/bad.toml:13:1: storage.synchronous: must be one of full, normal, off, got "fast"
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
