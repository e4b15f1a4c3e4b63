package conf

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	// go-toml/v2 rather than BurntSushi/toml: its parser exposes the line and
	// column of every key, so each problem can point at its line; BurntSushi
	// keeps key positions private and stops at the first bad key.
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// maxFileSize bounds what Load reads. A configuration is a few kilobytes; a
// file this big is the wrong file, and reading it whole would cost memory.
const maxFileSize = 1 << 20

// Load reads the TOML file at path on top of Default, checks every rule, and
// resolves relative paths (see Config.ResolvePaths).
//
// When anything is wrong Load returns a nil *Config and a Problems error
// listing every problem found: unknown keys, values of the wrong type, and
// broken rules, each with its key and line. A file that cannot be read gives
// a single Problem that unwraps to the cause, so that
// errors.Is(err, fs.ErrNotExist) reports a missing file.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error(), cause: err}}
	}
	return decode(path, data)
}

// Check loads the file at path as Load does, and also checks what only
// matters at start: that the certificate and key files, when named, can be
// read. It returns nil or Problems. It is what `twotick check-config FILE`
// runs.
func Check(path string) error {
	data, err := readFile(path)
	if err != nil {
		return Problems{{File: path, Msg: err.Error(), cause: err}}
	}
	c, err := decode(path, data)
	if err != nil {
		return err
	}

	var ps Problems
	pos := keyPositions(data)
	for _, f := range []struct{ key, name string }{
		{"tls.cert_file", c.TLS.CertFile},
		{"tls.key_file", c.TLS.KeyFile},
	} {
		if f.name == "" {
			continue
		}
		if _, err := os.ReadFile(f.name); err != nil {
			p := pos[f.key]
			ps = append(ps, Problem{File: path, Key: f.key, Line: p.line, Column: p.col,
				Msg: err.Error(), cause: err})
		}
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// decode is Load once the file is read: data, named file in problems, is
// applied to Default, checked and resolved.
func decode(file string, data []byte) (*Config, error) {
	c, ps := load(file, data)
	if len(ps) > 0 {
		return nil, ps
	}
	if err := c.ResolvePaths(); err != nil {
		return nil, Problems{{File: file, Key: "data_dir", Msg: err.Error(), cause: err}}
	}
	return c, nil
}

// readFile reads a configuration file. Its errors do not repeat the path,
// which the Problem that carries them names first.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("cannot open: %w", pe.Err)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes: not a twotick configuration", maxFileSize)
	}
	// Some editors start a UTF-8 file with a byte order mark, which TOML
	// does not allow; it is invisible, so it is dropped rather than reported.
	return bytes.TrimPrefix(data, []byte("\uFEFF")), nil
}

// load decodes data, named file in problems, on top of Default and checks
// it. It returns the configuration, unresolved, and every problem found.
func load(file string, data []byte) (*Config, Problems) {
	// go-toml reads the document into a tree first: that settles syntax,
	// duplicate keys and value types as TOML defines them, so the walk
	// below only has to match the tree against the struct.
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		return nil, Problems{syntaxProblem(file, data, err)}
	}

	d := decoder{file: file, pos: keyPositions(data)}
	c := Default()
	d.table(reflect.ValueOf(c).Elem(), tree, "")

	v := validator{file: file, pos: d.pos, skip: d.reported}
	c.check(&v)

	ps := append(d.problems, v.problems...)
	sortProblems(ps)
	return c, ps
}

func syntaxProblem(file string, data []byte, err error) Problem {
	p := Problem{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: "), cause: err}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		p.Line, p.Column = de.Position()
		p.Key = keyAtLine(data, p.Line, strings.Join(de.Key(), "."))
	}
	return p
}

// bareKey matches a bare, possibly dotted, TOML key.
var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+(\s*\.\s*[A-Za-z0-9_-]+)*$`)

// keyAtLine names the key written on a line that go-toml could not read.
// go-toml names no key for a malformed value, and only the last part of a
// key defined twice, so the key is read from the line itself: a [table]
// header, or the bare key before "=" within the table in effect there. When
// the line holds neither, fallback is returned.
func keyAtLine(data []byte, line int, fallback string) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return fallback
	}
	text := strings.TrimSpace(string(lines[line-1]))
	if h, ok := headerKey(text); ok {
		return h
	}
	k, _, ok := strings.Cut(text, "=")
	k = strings.TrimSpace(k)
	if !ok || !bareKey.MatchString(k) {
		return fallback
	}
	k = strings.Join(strings.Fields(strings.ReplaceAll(k, ".", " ")), ".")

	// The table in effect is that of the last header above; the parser's
	// walk stops at the error, but a header above it has been read.
	w := walkPositions(data)
	table := ""
	for _, h := range w.headers {
		if h.line < line {
			table = h.key
		}
	}
	return joinKey(table, k)
}

// headerKey reads a bare [table] or [[array]] header line.
func headerKey(text string) (string, bool) {
	text, _, _ = strings.Cut(text, "#")
	text = strings.TrimSpace(text)
	inner, ok := strings.CutPrefix(text, "[")
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, "]")
	if !ok {
		return "", false
	}
	inner = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(inner, "["), "]"))
	if !bareKey.MatchString(inner) {
		return "", false
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(inner, ".", " ")), "."), true
}

// ResolvePaths makes DataDir absolute, taking a relative one as relative to
// the working directory, and makes every field tagged `conf:"path"`
// (storage.path, tls.cert_file, tls.key_file) absolute by joining a relative
// name to DataDir. Empty names stay empty. Load calls it; a caller that starts
// from Default calls it itself. Calling it twice changes nothing.
func (c *Config) ResolvePaths() error {
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("resolving data_dir %q: %w", c.DataDir, err)
	}
	c.DataDir = dir
	resolveUnder(reflect.ValueOf(c).Elem(), dir)
	return nil
}

func resolveUnder(rv reflect.Value, dir string) {
	for _, f := range fields(rv.Type()) {
		fv := rv.Field(f.index)
		switch {
		case f.path && fv.Kind() == reflect.String:
			if p := fv.String(); p != "" && !filepath.IsAbs(p) {
				fv.SetString(filepath.Join(dir, p))
			}
		case fv.Kind() == reflect.Struct:
			resolveUnder(fv, dir)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			for j := range fv.Len() {
				resolveUnder(fv.Index(j), dir)
			}
		}
	}
}

// field is one struct field that the file can set.
type field struct {
	name   string // its TOML key
	index  int
	secret bool // tagged conf:"secret"
	path   bool // tagged conf:"path"
}

// fields lists the fields of a section struct that have a TOML key, in
// declaration order, which is also file and documentation order.
func fields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		opts := strings.Split(sf.Tag.Get("conf"), ",")
		fs = append(fs, field{
			name:   name,
			index:  i,
			secret: slices.Contains(opts, "secret"),
			path:   slices.Contains(opts, "path"),
		})
	}
	return fs
}

// decoder applies a TOML tree to a Config, collecting every unknown key and
// every value of the wrong type instead of stopping at the first.
type decoder struct {
	file     string
	pos      map[string]position
	problems Problems
	reported map[string]bool // keys with a problem, which rules then skip
}

func (d *decoder) add(key, msg string) {
	p := d.pos[key]
	d.problems = append(d.problems, Problem{
		File: d.file, Key: key, Line: p.line, Column: p.col, Msg: msg,
	})
	if d.reported == nil {
		d.reported = make(map[string]bool)
	}
	d.reported[key] = true
}

// table applies the TOML table m to the section struct rv.
func (d *decoder) table(rv reflect.Value, m map[string]any, prefix string) {
	fs := fields(rv.Type())
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names) // problems are sorted by line later; this keeps ties stable
	for _, name := range names {
		key := joinKey(prefix, name)
		i := slices.IndexFunc(fs, func(f field) bool { return f.name == name })
		if i < 0 {
			d.add(key, unknownKey(name, fs))
			continue
		}
		d.value(rv.Field(fs[i].index), m[name], key)
	}
}

var (
	durationType        = reflect.TypeFor[Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value stores the TOML value val, found at key, in the field fv.
func (d *decoder) value(fv reflect.Value, val any, key string) {
	if fv.Addr().Type().Implements(textUnmarshalerType) {
		s, ok := val.(string)
		if !ok {
			want := "a string"
			if fv.Type() == durationType {
				want = `a duration string such as "30s" or "5m"`
			}
			d.add(key, fmt.Sprintf("must be %s, got %s", want, describe(val)))
			return
		}
		u := fv.Addr().Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(s)); err != nil {
			d.add(key, err.Error())
		}
		return
	}

	switch fv.Kind() {
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			d.add(key, fmt.Sprintf("must be a table [%s], got %s", key, describe(val)))
			return
		}
		d.table(fv, m, key)
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			d.add(key, "must be a string, got "+describe(val))
			return
		}
		fv.SetString(s)
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			d.add(key, "must be true or false, got "+describe(val))
			return
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := val.(int64)
		switch {
		case !ok:
			d.add(key, "must be an integer, got "+describe(val))
		case fv.OverflowInt(n):
			d.add(key, fmt.Sprintf("%d is out of range", n))
		default:
			fv.SetInt(n)
		}
	case reflect.Slice:
		arr, ok := val.([]any)
		if !ok {
			d.add(key, "must be an array, got "+describe(val))
			return
		}
		s := reflect.MakeSlice(fv.Type(), len(arr), len(arr))
		for i, elem := range arr {
			d.value(s.Index(i), elem, fmt.Sprintf("%s[%d]", key, i))
		}
		fv.Set(s)
	case reflect.Map:
		d.stringTable(fv, val, key)
	default:
		// A field type added to Config without support here: a bug in
		// twotick, reported rather than panicking on an operator's file.
		d.add(key, fmt.Sprintf("twotick cannot read a setting of Go type %s", fv.Type()))
	}
}

// stringTable stores a TOML table of strings, found at key, in the
// map[string]string field fv; each entry's problems name its own key.
func (d *decoder) stringTable(fv reflect.Value, val any, key string) {
	if fv.Type().Key().Kind() != reflect.String || fv.Type().Elem().Kind() != reflect.String {
		d.add(key, fmt.Sprintf("twotick cannot read a setting of Go type %s", fv.Type()))
		return
	}
	m, ok := val.(map[string]any)
	if !ok {
		d.add(key, fmt.Sprintf("must be a table [%s], got %s", key, describe(val)))
		return
	}
	out := reflect.MakeMapWithSize(fv.Type(), len(m))
	for name, elem := range m {
		s, ok := elem.(string)
		if !ok {
			d.add(joinKey(key, name), "must be a string, got "+describe(elem))
			continue
		}
		out.SetMapIndex(reflect.ValueOf(name), reflect.ValueOf(s))
	}
	fv.Set(out)
}

// describe names a TOML value's type and shows short values, for messages
// such as `must be an integer, got string "ten"`.
func describe(val any) string {
	switch v := val.(type) {
	case string:
		if utf8.RuneCountInString(v) > 40 {
			v = string([]rune(v)[:40]) + "..."
		}
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// unknownKey says that name is not a setting, suggesting the closest known
// key of the same section when one is near enough to be a typo.
func unknownKey(name string, fs []field) string {
	best, bestDist := "", 3 // more than two edits apart is not a typo
	for _, f := range fs {
		if dist := editDistance(name, f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		return "unknown key"
	}
	return fmt.Sprintf("unknown key (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes. Keys
// are short ASCII; an overlong name cannot be a typo, so it is not measured.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// position is a place in the file, counting lines and columns from 1.
type position struct{ line, col int }

// keyPositions maps every dotted key in a well-formed TOML document to where
// it is first written: a table header, a key of a key/value pair, or a part
// of a dotted key. Elements of arrays, and of arrays of tables, are named
// key[i]. go-toml's decoder reports the position of the first problem only,
// so the positions of all keys come from its parser.
func keyPositions(data []byte) map[string]position {
	return walkPositions(data).pos
}

// walkPositions walks the document as far as it parses.
func walkPositions(data []byte) *positionWalker {
	lines := lineStarts(data)
	at := func(n *unstable.Node) position {
		off := int(n.Raw.Offset)
		i := sort.Search(len(lines), func(i int) bool { return lines[i] > off }) - 1
		return position{line: i + 1, col: utf8.RuneCount(data[lines[i]:off]) + 1}
	}

	w := positionWalker{pos: make(map[string]position), at: at, arrays: make(map[string]int)}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = w.header(e, e.Kind == unstable.ArrayTable)
			w.headers = append(w.headers, header{at(e.Child()).line, table})
		case unstable.KeyValue:
			w.keyValue(table, e)
		}
	}
	return &w
}

type positionWalker struct {
	pos     map[string]position
	at      func(*unstable.Node) position
	arrays  map[string]int // elements so far of each array of tables
	headers []header       // in file order
}

// header is a [table] or [[array]] header: its line and the key that the
// key/value pairs after it belong to.
type header struct {
	line int
	key  string
}

func (w *positionWalker) record(key string, n *unstable.Node) {
	if _, ok := w.pos[key]; !ok {
		w.pos[key] = w.at(n)
	}
}

// header records a [table] or [[array]] header and returns the key that the
// following key/value pairs belong to. A header inside an array of tables
// refers to its last element, so that element's index is part of the key.
func (w *positionWalker) header(e *unstable.Node, array bool) string {
	key := ""
	it := e.Key()
	for it.Next() {
		n := it.Node()
		key = joinKey(key, string(n.Data))
		if array && it.IsLast() {
			i := w.arrays[key]
			w.arrays[key] = i + 1
			w.record(key, n)
			key = fmt.Sprintf("%s[%d]", key, i)
		} else if i, ok := w.arrays[key]; ok {
			key = fmt.Sprintf("%s[%d]", key, i-1)
		}
		w.record(key, n)
	}
	return key
}

func (w *positionWalker) keyValue(table string, e *unstable.Node) {
	key := table
	it := e.Key()
	for it.Next() {
		key = joinKey(key, string(it.Node().Data))
		w.record(key, it.Node())
	}
	w.value(key, e.Value())
}

// value records the keys inside inline tables and arrays.
func (w *positionWalker) value(key string, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			w.keyValue(key, it.Node())
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			k := fmt.Sprintf("%s[%d]", key, i)
			n := it.Node()
			if n.Raw.Length > 0 {
				w.record(k, n)
			} else if p, ok := w.pos[key]; ok {
				// The parser keeps no range for an array nested in an
				// array; the enclosing element's place is the best there is.
				w.pos[k] = p
			}
			w.value(k, n)
		}
	}
}

// lineStarts returns the offset at which each line of data begins.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for off := 0; ; {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return starts
		}
		off += i + 1
		starts = append(starts, off)
	}
}
