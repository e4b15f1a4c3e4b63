package conf

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

const docsPath = "../docs/configuration.md"

// docRow is one row of a reference table in docs/configuration.md.
type docRow struct{ key, typ, def string }

// docRows reads the reference tables: rows whose first cell is a `key`.
func docRows(t *testing.T) (map[string]docRow, string) {
	t.Helper()
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	rows := make(map[string]docRow)
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 4 {
			t.Errorf("table row with %d cells: %s", len(cells), line)
			continue
		}
		key := strings.Trim(cells[0], " `")
		if _, dup := rows[key]; dup {
			t.Errorf("%s has two rows", key)
		}
		rows[key] = docRow{key, strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])}
	}
	return rows, string(data)
}

// The reference cannot fall behind the struct: every setting has a row with
// a type and the true default, and no row names a setting that is gone.
func TestDocsListEverySetting(t *testing.T) {
	rows, _ := docRows(t)
	settings := Default().Settings()
	known := make(map[string]bool)
	for _, s := range settings {
		known[s.Key] = true
		row, ok := rows[s.Key]
		if !ok {
			t.Errorf("%s is missing from %s", s.Key, docsPath)
			continue
		}
		if row.typ == "" {
			t.Errorf("%s: no type in %s", s.Key, docsPath)
		}
		if def := strings.Trim(row.def, "`\""); def != s.Value {
			t.Errorf("%s: %s gives default %s, Default() has %q", s.Key, docsPath, row.def, s.Value)
		}
	}
	for key := range rows {
		// Keys of arrays of tables ([[components.service]]) have no
		// default and so no entry in Settings; they are documented as [N].
		if !known[key] && !strings.Contains(key, "[N]") {
			t.Errorf("%s documents %s, which is not a setting", docsPath, key)
		}
	}
}

// The check-config output shown in the docs is what Check prints.
func TestDocsShowCheckOutput(t *testing.T) {
	_, doc := docRows(t)
	err := Check("../testdata/conf/bad.toml")
	if err == nil {
		t.Fatal("bad.toml has no problems")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, "../")
		if !strings.Contains(doc, "\n"+line+"\n") {
			t.Errorf("%s does not show the line\n%s", docsPath, line)
		}
	}
}

// readmeLink matches the target of a Markdown link.
var readmeLink = regexp.MustCompile(`\]\([^)]*\)`)

// readmeFromDocs is what `make readme` writes to README.md: the hand-written
// head, then docs/configuration.md with its relative links, written from
// docs/, made relative to the top level.
func readmeFromDocs(head, ref string) string {
	return head + readmeLink.ReplaceAllStringFunc(ref, func(m string) string {
		target := m[2 : len(m)-1]
		switch {
		case target == "" || strings.HasPrefix(target, "#") || strings.Contains(target, ":"):
			return m // within the page, or another site
		case strings.HasPrefix(target, "../"):
			return "](" + strings.TrimPrefix(target, "../") + ")"
		default:
			return "](docs/" + target + ")"
		}
	})
}

// README.md ends with the configuration reference, so that it can be read
// on the project's front page; it must be the same as the one in docs/, with
// links that work from the top level.
func TestReadmeReference(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := readmeFromDocs(read("../docs/README.head.md"), read(docsPath))
	if os.Getenv("TWOTICK_WRITE_README") == "1" { // make readme
		if err := os.WriteFile("../README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := read("../README.md"); got != want {
		t.Fatal("README.md is not docs/README.head.md followed by docs/configuration.md; " +
			"edit those and run make readme")
	}
}
