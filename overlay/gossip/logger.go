package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// slogWriter turns memberlist's log lines ("[WARN] memberlist: text") into
// slog records at the matching level.
type slogWriter struct{ log *slog.Logger }

// newStdLogger returns a *log.Logger (what memberlist takes) writing to l.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{log: l.With("component", "memberlist")}, "", 0)
}

// Write logs one line; it never fails.
func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(string(bytes.TrimRight(p, "\n")))
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// parseMemberlistLine splits memberlist's "[LEVEL] memberlist: text" into
// a slog level and the text; a line without a level logs at Info.
func parseMemberlistLine(line string) (slog.Level, string) {
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, text, ok := strings.Cut(rest, "] "); ok {
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				return level, line
			}
			line = text
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	return level, line
}
