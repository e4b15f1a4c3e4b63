package roster

import (
	"errors"
	"fmt"
	"strings"
	"sync"

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

// PossibleE164 reports whether s, in E.164, has a country calling code in
// use and a national number of a length that code has (libphonenumber's
// possible lengths). It is the check an uploaded number already in E.164
// gets instead of ParsePhone, which costs microseconds a number: it takes
// no parsing, and refuses what cannot be anyone's number ("+999…", a US
// number of nine digits) though not every number that is not in use.
func PossibleE164(s string) bool {
	if !IsE164(s) {
		return false
	}
	possible, _ := screenE164(s)
	return possible
}

// TrunkZeroE164 reports whether s, in E.164, has a 0 right after its
// calling code: "+49 030 1234567" written without spaces, a national
// trunk prefix that does not belong in an international number (except
// in the few countries, Italy among them, whose numbers start with 0).
// Such a number needs ParsePhone, which drops the prefix where it is one.
func TrunkZeroE164(s string) bool {
	if !IsE164(s) {
		return false
	}
	_, trunkZero := screenE164(s)
	return trunkZero
}

// screenE164 is PossibleE164 and TrunkZeroE164 of s, which must be
// E.164-shaped (IsE164), with one lookup of its calling code.
func screenE164(s string) (possible, trunkZero bool) {
	codes := callingCodes()
	if codes == nil { // no metadata: the shape is all there is to check
		return true, false
	}
	cc, n := callingCode(s, codes)
	if n == 0 {
		return false, false
	}
	return codes[cc]&(1<<(len(s)-1-n)) != 0, 1+n < len(s) && s[1+n] == '0'
}

// callingCode returns the calling code that E.164 s starts with and its
// number of digits, or 0, 0 if none does. Calling codes are a prefix
// code: at most one of the first one, two and three digits is one.
func callingCode(s string, codes *[1000]uint32) (cc, digits int) {
	for i := 1; i <= 3; i++ {
		cc = cc*10 + int(s[i]-'0')
		if codes[cc] != 0 {
			return cc, i
		}
	}
	return 0, 0
}

// callingCodes returns, for each country calling code below 1,000, the
// lengths its national numbers may have as a bit set (bit n for n
// digits), zero for a code not in use; nil if libphonenumber's metadata
// cannot be read.
var callingCodes = sync.OnceValue(func() *[1000]uint32 {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil
	}
	var codes [1000]uint32
	for _, md := range coll.GetMetadata() {
		cc := md.GetCountryCode()
		if cc <= 0 || cc >= 1000 {
			continue
		}
		for _, l := range md.GetGeneralDesc().GetPossibleLength() {
			if l > 0 && l < 32 {
				codes[cc] |= 1 << l
			}
		}
	}
	return &codes
})

// RegionOf returns the ISO 3166 region of an E.164 number ("+4930…" gives
// "DE"), or "" if it has none.
func RegionOf(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}
