package conf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration: a key that is unknown,
// has the wrong type, or breaks a rule.
type Problem struct {
	// File is the configuration file as named to Load; empty when the
	// configuration did not come from a file.
	File string
	// Key is the dotted key, such as "c2s.idle_timeout"; empty for a problem
	// with the file as a whole, such as a TOML syntax error.
	Key string
	// Line and Column locate the key in File, counting from 1; zero when the
	// key is not in the file (a default broke a rule together with a key
	// that is) or the configuration did not come from a file.
	Line, Column int
	// Msg says what is wrong and, where it helps, what would be right.
	Msg string

	// cause is the underlying error, if any, for errors.Is and errors.As.
	cause error
}

// String formats the problem as "file:line:column: key: message", leaving out
// the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
			if p.Column > 0 {
				fmt.Fprintf(&b, ":%d", p.Column)
			}
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one configuration. Load, Check and
// Validate return it as their error so that an operator can fix the whole
// file in one go instead of one key per restart.
type Problems []Problem

// Error writes one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the underlying errors, such as a *fs.PathError when the file
// could not be read, so that errors.Is(err, fs.ErrNotExist) works.
func (ps Problems) Unwrap() []error {
	var errs []error
	for _, p := range ps {
		if p.cause != nil {
			errs = append(errs, p.cause)
		}
	}
	return errs
}

// sortProblems orders problems by their place in the file. Problems without
// a line (rules broken by defaults) keep their rule order and come last.
func sortProblems(ps Problems) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Line == 0 && b.Line == 0:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
