package register

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sync"
)

// Gateway delivers a verification code to a phone. number is in E.164;
// lang is the client's language (xml:lang or Accept-Language) for choosing
// the text. Send returns once the gateway has accepted the message or given
// up; cancelling ctx abandons it. Implementations must be safe for
// concurrent use and must not log the code.
type Gateway interface {
	Send(ctx context.Context, number, code, lang string) error
}

// CodeLogKey is the slog attribute under which LogGateway writes its line
// when it logs instead of writing a file.
const CodeLogKey = "sms_code"

// LogGateway "sends" codes by writing the line
//
//	code for +12025550123 is 123456
//
// to the file Path (appended, created with mode 0600) or, if Path is empty,
// to Logger at Info under the key CodeLogKey. It is for development and
// tests: anyone who can read the file or the log can register any number.
// It is the only place in twotick where a code is written down.
//
// A LogGateway is safe for concurrent use.
type LogGateway struct {
	Path   string
	Logger *slog.Logger

	mu sync.Mutex // serialises appends to Path so lines never interleave
}

// Send writes the code line.
func (g *LogGateway) Send(ctx context.Context, number, code, lang string) error {
	line := fmt.Sprintf("code for %s is %s", number, code)
	if g.Path == "" {
		logger := g.Logger
		if logger == nil {
			return errors.New("log gateway has neither a path nor a logger")
		}
		logger.InfoContext(ctx, "development sms", CodeLogKey, line, "lang", lang)
		return nil
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(g.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log gateway: %w", err)
	}
	if _, err := io.WriteString(f, line+"\n"); err != nil {
		f.Close()
		return fmt.Errorf("log gateway: writing %s: %w", g.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("log gateway: closing %s: %w", g.Path, err)
	}
	return nil
}

// ErrNoCode is returned by FindCode and ReadCodeFromLog when no code for the
// number was logged.
var ErrNoCode = errors.New("no code logged for this number")

var codeLine = regexp.MustCompile(`code for (\+[0-9]+) is ([0-9]{6})`)

// FindCode returns the last code logged for number in r, which may hold
// the LogGateway's file or a slog text or JSON log written through it.
func FindCode(r io.Reader, number string) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	code := ""
	for sc.Scan() {
		for _, m := range codeLine.FindAllStringSubmatch(sc.Text(), -1) {
			if m[1] == number {
				code = m[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading code log: %w", err)
	}
	if code == "" {
		return "", fmt.Errorf("%s: %w", number, ErrNoCode)
	}
	return code, nil
}

// ReadCodeFromLog returns the last code that LogGateway wrote for number to
// the file at path (or to a log file it logged into).
func ReadCodeFromLog(path, number string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading code log: %w", err)
	}
	defer f.Close()
	return FindCode(f, number)
}
