package roster

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidNumber is returned for text that is not a valid phone number.
var ErrInvalidNumber = errors.New("not a valid phone number")

// ParsePhone reads a phone number as a person would write it ("+1 (202)
// 555-0101", "030 1234567") and returns it in E.164 ("+12025550101").
// Numbers without a country code are read as numbers of region, an ISO 3166
// code such as "US" or "DE". The number must be valid for its region, not
// merely possible; the error wraps ErrInvalidNumber and quotes the input.
//
// ParsePhone is safe for concurrent use.
func ParsePhone(s, region string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty phone number: %w", ErrInvalidNumber)
	}
	if len(s) > 64 {
		return "", fmt.Errorf("phone number longer than 64 characters: %w", ErrInvalidNumber)
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, ErrInvalidNumber)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%q is not a number in use in any region: %w", s, ErrInvalidNumber)
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if !IsE164(e164) {
		// libphonenumber holds some national numbers longer than the 15
		// digits E.164 allows (German ones, for instance); no account can
		// be named by one.
		return "", fmt.Errorf("%q is longer than an international number may be: %w",
			s, ErrInvalidNumber)
	}
	return e164, nil
}

// IsE164 reports whether s has the shape of an E.164 number: a plus sign and
// 4 to 15 digits, the first not zero. Some regions have numbers that short
// (German numbers with five-digit subscriber parts, small island nations).
// It does not say whether the number is valid; ParsePhone does.
func IsE164(s string) bool {
	if len(s) < 5 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// RegionOf returns the ISO 3166 region of an E.164 number ("+4930…" gives
// "DE"), or "" if it has none.
func RegionOf(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}
