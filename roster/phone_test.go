package roster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nyaruka/phonenumbers"
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

func TestPossibleE164(t *testing.T) {
	for in, want := range map[string]bool{
		"+12025550101":     true,  // US, 10 digits
		"+1202555010":      false, // US, 9
		"+120255501011":    false, // US, 11
		"+49301234567":     true,  // DE, 10
		"+4930000":         true,  // DE, 5: Germany has numbers that short
		"+447911123456":    true,  // GB, 10
		"+44791112345":     true,  // GB, 9
		"+4479111234":      false, // GB, 8
		"+80012345678":     true,  // international freephone, 8
		"+99912345678":     false, // 999 is not a calling code
		"+2812345678":      false, // nor is 28
		"+79261234567":     true,  // RU, 10
		"+1202555010a":     false, // not E.164 at all
		"+123456789012345": false, // +1 with 14 digits
	} {
		if got := PossibleE164(in); got != want {
			t.Errorf("PossibleE164(%q) = %v, want %v", in, got, want)
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
		// An upload's fast path must never drop a valid number.
		if !PossibleE164(got) {
			t.Fatalf("ParsePhone(%q) = %q, which PossibleE164 refuses", s, got)
		}
		again, err := ParsePhone(got, "")
		if err != nil || again != got {
			t.Fatalf("E.164 %q does not parse to itself: %q, %v", got, again, err)
		}
	})
}

func TestTrunkZeroE164(t *testing.T) {
	for in, want := range map[string]bool{
		"+490301234567": true,  // DE with its trunk 0
		"+49301234567":  false, //
		"+390612345678": true,  // IT: the 0 is part of the number; parsed all the same
		"+12025550101":  false, //
		"+99901234567":  false, // no calling code
		"030 1234567":   false, // not E.164
	} {
		if got := TrunkZeroE164(in); got != want {
			t.Errorf("TrunkZeroE164(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestPossibleE164Examples checks that libphonenumber's example number of
// every region and calling code, of every type it has one of, passes the
// fast path's check: a valid number must never be dropped.
func TestPossibleE164Examples(t *testing.T) {
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE,
		phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST,
		phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN,
		phonenumbers.VOICEMAIL}
	checked := 0
	check := func(num *phonenumbers.PhoneNumber, what string) {
		if num == nil {
			return
		}
		e164 := phonenumbers.Format(num, phonenumbers.E164)
		if !IsE164(e164) || !phonenumbers.IsValidNumber(num) {
			return // longer than E.164 allows: ParsePhone refuses it too
		}
		checked++
		if !PossibleE164(e164) {
			t.Errorf("%s: example %s refused", what, e164)
		}
	}
	for region := range phonenumbers.GetSupportedRegions() {
		for _, ty := range types {
			check(phonenumbers.GetExampleNumberForType(region, ty), region)
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		check(phonenumbers.GetExampleNumberForNonGeoEntity(cc), fmt.Sprint("+", cc))
	}
	if checked < 1000 {
		t.Fatalf("checked only %d example numbers", checked)
	}
}
