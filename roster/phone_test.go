package roster

import (
	"errors"
	"testing"
)

func TestParsePhone(t *testing.T) {
	tests := []struct {
		name, in, region, want string
		bad                    bool
	}{
		{name: "us formatted", in: "+1 (202) 555-0101", region: "US", want: "+12025550101"},
		{name: "german national", in: "030 1234567", region: "DE", want: "+49301234567"},
		{name: "e164", in: "+447911123456", region: "US", want: "+447911123456"},
		{name: "letters", in: "hello", region: "US", bad: true},
		{name: "too short", in: "+1 202", region: "US", bad: true},
		{name: "empty", in: "  ", region: "US", bad: true},
		{name: "longer than E.164", in: "20100000000000", region: "DE", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePhone(tc.in, tc.region)
			if tc.bad {
				if !errors.Is(err, ErrInvalidNumber) {
					t.Fatalf("ParsePhone(%q) = %q, %v; want ErrInvalidNumber", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestIsE164(t *testing.T) {
	for in, want := range map[string]bool{
		"+12025550101": true, "12025550101": false, "+0123456789": false,
		"+1202555010a": false, "+123": false, "+4930000": true, "+1234567890123456": false,
	} {
		if got := IsE164(in); got != want {
			t.Errorf("IsE164(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"+1 (202) 555-0101", "030 1234567", "+", "++1", "0"} {
		f.Add(s, "DE")
	}
	f.Fuzz(func(t *testing.T, s, region string) {
		got, err := ParsePhone(s, region)
		if err != nil {
			return
		}
		if !IsE164(got) {
			t.Fatalf("ParsePhone(%q) = %q, not E.164", s, got)
		}
		again, err := ParsePhone(got, "")
		if err != nil || again != got {
			t.Fatalf("E.164 %q does not parse to itself: %q, %v", got, again, err)
		}
	})
}
