package register

import (
	"strings"
	"sync"

	"golang.org/x/text/language"
)

// DefaultSMSText is the SMS template used when none matches the client's
// language.
const DefaultSMSText = "Your twotick code is {code}"

// Texts chooses the SMS text for a client's language. The zero value sends
// DefaultSMSText to everyone.
//
// A Texts must not be modified once it is in use; Message is safe for
// concurrent use.
type Texts struct {
	// Default is the template for languages without one of their own
	// (default DefaultSMSText). "{code}" is replaced by the code; a
	// template without it gets the code appended.
	Default string
	// ByLang holds templates by BCP 47 language tag ("de", "pt-BR").
	ByLang map[string]string

	once    sync.Once
	matcher language.Matcher
	order   []string // templates in matcher order; order[0] is Default
}

func (t *Texts) init() {
	def := t.Default
	if def == "" {
		def = DefaultSMSText
	}
	tags := []language.Tag{language.Und}
	t.order = []string{def}
	for tag, text := range t.ByLang {
		parsed, err := language.Parse(tag)
		if err != nil || text == "" {
			continue // conf validates tags; a bad one here just never matches
		}
		tags = append(tags, parsed)
		t.order = append(t.order, text)
	}
	t.matcher = language.NewMatcher(tags)
}

// Message returns the SMS text for code in the language that best matches
// lang, which may be an xml:lang value ("de-AT") or an Accept-Language
// header ("fr-CH, fr;q=0.9, en;q=0.8").
func (t *Texts) Message(lang, code string) string {
	template := t.pick(lang)
	if !strings.Contains(template, "{code}") {
		return template + " " + code
	}
	return strings.ReplaceAll(template, "{code}", code)
}

func (t *Texts) pick(lang string) string {
	t.once.Do(t.init)
	return t.order[matchIndex(t.matcher, lang)]
}

// matchIndex returns the index of the supported tag best matching lang, 0
// (the default) if none matches with at least low confidence.
func matchIndex(m language.Matcher, lang string) int {
	if strings.TrimSpace(lang) == "" {
		return 0
	}
	want, _, err := language.ParseAcceptLanguage(lang)
	if err != nil || len(want) == 0 {
		return 0
	}
	_, i, conf := m.Match(want...)
	if conf == language.No {
		return 0
	}
	return i
}

// catalogue holds the user-visible sentences of registration: form labels,
// instructions and error texts. English is the fallback.
var catalogue = map[string]map[string]string{
	"en": {
		"instructions": "Enter your phone number with its country code and choose a password. " +
			"A code is sent to you by SMS; submit the form again with that code to " +
			"create your account.",
		"phone":      "Phone number (with country code, such as +1 202 555 0123)",
		"password":   "Password",
		"code":       "Code from the SMS (leave empty to receive one)",
		"code_sent":  "A code has been sent by SMS to %s. Submit the form again with the code.",
		"wrong_code": "The code is wrong. Check the SMS and try again.",
		"expired": "The code has expired or was never sent. " +
			"Request a new one by submitting without a code.",
		"too_many":     "Too many wrong codes. Request a new code.",
		"rate_limited": "Too many codes have been requested. Try again in %s.",
		"bad_number": "This is not a valid phone number. " +
			"Include the country code, such as +1 202 555 0123.",
		"bad_password":  "The password must be at least %d characters long.",
		"bad_form":      "The registration form is incomplete or malformed.",
		"send_failed":   "The SMS could not be sent. Try again later.",
		"internal":      "Registration failed because of a server problem. Try again later.",
		"username_hint": "Your phone number, with country code",
	},
	"de": {
		"instructions": "Gib deine Telefonnummer mit Ländervorwahl ein und wähle ein Passwort. " +
			"Du bekommst einen Code per SMS; sende das Formular mit diesem Code erneut, " +
			"um dein Konto anzulegen.",
		"phone":    "Telefonnummer (mit Ländervorwahl, etwa +49 30 1234567)",
		"password": "Passwort",
		"code":     "Code aus der SMS (leer lassen, um einen zu bekommen)",
		"code_sent": "Ein Code wurde per SMS an %s geschickt. " +
			"Sende das Formular mit dem Code erneut.",
		"wrong_code": "Der Code ist falsch. Prüfe die SMS und versuche es noch einmal.",
		"expired": "Der Code ist abgelaufen oder wurde nie verschickt. " +
			"Fordere ohne Code einen neuen an.",
		"too_many":     "Zu viele falsche Codes. Fordere einen neuen Code an.",
		"rate_limited": "Es wurden zu viele Codes angefordert. Versuche es in %s wieder.",
		"bad_number": "Das ist keine gültige Telefonnummer. " +
			"Gib die Ländervorwahl mit an, etwa +49 30 1234567.",
		"bad_password": "Das Passwort muss mindestens %d Zeichen lang sein.",
		"bad_form":     "Das Registrierungsformular ist unvollständig oder fehlerhaft.",
		"send_failed": "Die SMS konnte nicht verschickt werden. " +
			"Versuche es später noch einmal.",
		"internal": "Die Registrierung ist an einem Serverproblem gescheitert. " +
			"Versuche es später noch einmal.",
		"username_hint": "Deine Telefonnummer mit Ländervorwahl",
	},
	"fr": {
		"instructions": "Saisissez votre numéro de téléphone avec l'indicatif du pays et choisissez " +
			"un mot de passe. Un code vous est envoyé par SMS ; renvoyez le formulaire avec " +
			"ce code pour créer votre compte.",
		"phone":      "Numéro de téléphone (avec l'indicatif, par exemple +33 6 12 34 56 78)",
		"password":   "Mot de passe",
		"code":       "Code reçu par SMS (laisser vide pour en recevoir un)",
		"code_sent":  "Un code a été envoyé par SMS au %s. Renvoyez le formulaire avec ce code.",
		"wrong_code": "Le code est incorrect. Vérifiez le SMS et réessayez.",
		"expired": "Le code a expiré ou n'a jamais été envoyé. " +
			"Renvoyez le formulaire sans code pour en obtenir un nouveau.",
		"too_many":     "Trop de codes erronés. Demandez un nouveau code.",
		"rate_limited": "Trop de codes ont été demandés. Réessayez dans %s.",
		"bad_number": "Ce numéro de téléphone n'est pas valide. " +
			"Indiquez l'indicatif du pays, par exemple +33 6 12 34 56 78.",
		"bad_password": "Le mot de passe doit compter au moins %d caractères.",
		"bad_form":     "Le formulaire d'inscription est incomplet ou mal formé.",
		"send_failed":  "Le SMS n'a pas pu être envoyé. Réessayez plus tard.",
		"internal": "L'inscription a échoué à cause d'un problème du serveur. " +
			"Réessayez plus tard.",
		"username_hint": "Votre numéro de téléphone, avec l'indicatif du pays",
	},
}

var (
	catalogueOnce    sync.Once
	catalogueMatcher language.Matcher
	catalogueTags    []string
)

// localized returns the catalogue language best matching lang and the
// sentence for key in it.
func localized(lang, key string) (string, string) {
	catalogueOnce.Do(func() {
		catalogueTags = []string{"en", "de", "fr"}
		tags := make([]language.Tag, len(catalogueTags))
		for i, t := range catalogueTags {
			tags[i] = language.MustParse(t)
		}
		catalogueMatcher = language.NewMatcher(tags)
	})
	tag := catalogueTags[matchIndex(catalogueMatcher, lang)]
	if s, ok := catalogue[tag][key]; ok {
		return tag, s
	}
	return "en", catalogue["en"][key]
}
