package sse

import (
	"bytes"
	"encoding/json"
	"io"
)

// Event is one dispatched server-sent event.
type Event struct {
	Name string // the "event:" field; empty means "message"
	ID   string // the "id:" field
	Data []byte // the "data:" lines joined by "\n"
}

// Scanner splits a byte stream into events incrementally. Bytes may arrive in
// any split; the events are the same as if the whole stream came at once.
// The zero value is ready to use.
type Scanner struct {
	line    []byte // an unfinished line carried between writes
	ev      Event
	hasData bool
	sawCR   bool // the last byte was '\r', so a following '\n' belongs to it
}

// maxLine bounds a single line so that a hostile stream cannot grow memory.
const maxLine = 1 << 20

// Feed consumes p and calls emit for every event it completes. The Event's
// Data is only valid during the call.
func (s *Scanner) Feed(p []byte, emit func(Event)) {
	for len(p) > 0 {
		if s.sawCR {
			s.sawCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if len(s.line)+len(p) <= maxLine {
				s.line = append(s.line, p...)
			}
			return
		}
		var line []byte
		if len(s.line) > 0 {
			if len(s.line)+i <= maxLine {
				s.line = append(s.line, p[:i]...)
			}
			line = s.line
		} else {
			line = p[:i]
		}
		s.sawCR = p[i] == '\r'
		p = p[i+1:]
		s.processLine(line, emit)
		s.line = s.line[:0]
	}
}

func (s *Scanner) processLine(line []byte, emit func(Event)) {
	if len(line) == 0 {
		if s.hasData {
			emit(s.ev)
		}
		s.ev.Name = ""
		s.ev.Data = s.ev.Data[:0]
		s.hasData = false
		return
	}
	if line[0] == ':' {
		return // comment
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		s.ev.Name = string(value)
	case "data":
		if s.hasData {
			s.ev.Data = append(s.ev.Data, '\n')
		}
		s.ev.Data = append(s.ev.Data, value...)
		s.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.ev.ID = string(value)
		}
	}
}

// Parse returns every complete event of b, copying their data.
func Parse(b []byte) []Event {
	var s Scanner
	var out []Event
	s.Feed(b, func(e Event) {
		e.Data = bytes.Clone(e.Data)
		out = append(out, e)
	})
	return out
}

// WriteEvent writes one event with its data split across data lines.
func WriteEvent(w io.Writer, name string, data []byte) error {
	return WriteFullEvent(w, Event{Name: name, Data: data})
}

// WriteFullEvent writes e with its name and id, as a proxy re-sends an event it parsed.
func WriteFullEvent(w io.Writer, e Event) error {
	var buf bytes.Buffer
	if e.Name != "" {
		buf.WriteString("event: ")
		buf.WriteString(e.Name)
		buf.WriteByte('\n')
	}
	if e.ID != "" {
		buf.WriteString("id: ")
		buf.WriteString(e.ID)
		buf.WriteByte('\n')
	}
	for _, line := range bytes.Split(e.Data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(bytes.TrimSuffix(line, []byte("\r")))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// WriteError ends a stream with an "error" event carrying an OpenAI-style
// error object, so that a client never mistakes a cut stream for a clean end.
func WriteError(w io.Writer, typ, msg string) error {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": typ}})
	return WriteEvent(w, "error", body)
}
