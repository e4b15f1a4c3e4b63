package conf

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes through the loader: it must never panic,
// an error must always be Problems with something in it, and a file that
// loads must pass Validate again and list its settings.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"domain = 'Example.NET'\n[c2s]\nmax_stanza_size = 1\nidle_timout = 3\n",
		"c2s = { idle_timeout = '1m', max_stanza_size = 20000 }\n",
		"[[c2s]]\nx = 1\n[[c2s]]\n",
		"a.b.c = [1, [2, {x = 3}]]\n[a.b]\n",
		"[log]\nlevel = \"\"\"\nx\"\"\"\n",
		"[c2s]\nidle_timeout = 1979-05-27T07:32:00Z\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decode("fuzz.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("no error and no Config")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("loaded Config fails Validate: %v", err)
			}
			_ = c.Settings()
			return
		}

		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty Problems", err, err)
		}
		if c != nil {
			t.Errorf("Config returned with problems")
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, p := range ps {
			if p.Msg == "" || p.File != "fuzz.toml" {
				t.Errorf("problem without message or file: %#v", p)
			}
			if p.Line < 0 || p.Line > lines || p.Column < 0 {
				t.Errorf("problem at %d:%d in a file of %d lines", p.Line, p.Column, lines)
			}
		}
		_ = ps.Error()
	})
}
