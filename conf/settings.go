package conf

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Setting is one effective setting: its dotted key and its value as text.
type Setting struct{ Key, Value string }

// Settings lists every effective setting, flattened to dotted keys in file
// order, for logging once at start so that an operator can see what the
// server actually runs with, defaults included. Values of fields tagged
// `conf:"secret"` appear only as "(set)" or "(empty)".
//
// Elements of arrays of tables appear as key[i].name; arrays of plain values
// as one setting whose value is the elements separated by ", ".
func (c *Config) Settings() []Setting {
	return flatten(nil, reflect.ValueOf(c).Elem(), "")
}

func flatten(out []Setting, rv reflect.Value, prefix string) []Setting {
	for _, f := range fields(rv.Type()) {
		key := joinKey(prefix, f.name)
		fv := rv.Field(f.index)
		if f.secret {
			out = append(out, Setting{key, secretValue(fv)})
			continue
		}
		out = flattenValue(out, fv, key)
	}
	return out
}

func flattenValue(out []Setting, fv reflect.Value, key string) []Setting {
	switch {
	case fv.Kind() == reflect.Struct && !isText(fv):
		return flatten(out, fv, key)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct &&
		!isText(reflect.New(fv.Type().Elem()).Elem()):
		for i := range fv.Len() {
			out = flatten(out, fv.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
		return out
	case fv.Kind() == reflect.Map:
		return append(out, Setting{key, inlineTable(fv)})
	case fv.Kind() == reflect.Slice:
		vals := make([]string, fv.Len())
		for i := range vals {
			vals[i] = text(fv.Index(i))
		}
		return append(out, Setting{key, strings.Join(vals, ", ")})
	}
	return append(out, Setting{key, text(fv)})
}

func isText(fv reflect.Value) bool {
	_, ok := fv.Interface().(encoding.TextMarshaler)
	return ok
}

// text formats one value: through MarshalText when the type has it
// (durations), otherwise as fmt prints it.
func text(fv reflect.Value) string {
	if m, ok := fv.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return fmt.Sprintf("(cannot format: %v)", err)
		}
		return string(b)
	}
	return fmt.Sprint(fv.Interface())
}

func secretValue(fv reflect.Value) string {
	if fv.IsZero() || (fv.Kind() == reflect.Slice && fv.Len() == 0) {
		return "(empty)"
	}
	return "(set)"
}

// inlineTable formats a map of strings as a TOML inline table with sorted
// keys, such as {de = "Dein Code: {code}"}; an empty map is {}.
func inlineTable(fv reflect.Value) string {
	keys := make([]string, 0, fv.Len())
	for _, k := range fv.MapKeys() {
		keys = append(keys, fmt.Sprint(k.Interface()))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = %q", k, fv.MapIndex(reflect.ValueOf(k)).Interface())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
