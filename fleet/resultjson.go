package fleet

import (
	"encoding/json"
	"strconv"

	"github.com/shoal-dev/shoal/engine"
)

// entryPrefix is the indentation of a database entry in a report (the
// report is json.MarshalIndent(rep, "", "  ")).
const entryPrefix = "    "

// appendEntry appends r as a report entry: exactly what
// json.MarshalIndent(r.plain(), entryPrefix, "  ") returns.
func appendEntry(dst []byte, r *Result) ([]byte, error) {
	if out, ok := appendResultIndent(dst, r, entryPrefix); ok {
		return out, nil
	}
	data, err := json.MarshalIndent(r.plain(), entryPrefix, "  ")
	if err != nil {
		return dst, err
	}
	return append(dst, data...), nil
}

// appendResultIndent appends r as json.MarshalIndent(r.plain(), prefix, "  ")
// would, without reflection: writing the report of 100,000 tenants was
// mostly encoding/json's encoding and indenting of each entry. ok is false
// (dst unchanged) for a value it leaves to encoding/json (a time that
// cannot be written as RFC 3339). TestAppendResultIndentIsMarshalIndent
// holds it to encoding/json's output.
func appendResultIndent(dst []byte, r *Result, prefix string) (out []byte, ok bool) {
	start := len(dst)
	in := prefix + "  "
	field := func(name string) {
		dst = append(dst, in...)
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `": `...)
	}
	str := func(name, v string) {
		field(name)
		dst = appendJSONString(dst, v)
		dst = append(dst, ",\n"...)
	}
	optInt := func(name string, v *int64) {
		field(name)
		if v == nil {
			dst = append(dst, "null"...)
		} else {
			dst = strconv.AppendInt(dst, *v, 10)
		}
		dst = append(dst, ",\n"...)
	}
	optStr := func(name string, v *string, last bool) {
		field(name)
		if v == nil {
			dst = append(dst, "null"...)
		} else {
			dst = appendJSONString(dst, *v)
		}
		if !last {
			dst = append(dst, ',')
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, "{\n"...)
	str("run_id", r.RunID)
	str("job_id", r.JobID)
	str("tenant", r.Tenant)
	str("path", r.Path)
	str("outcome", r.Outcome)
	optInt("from", r.From)
	optInt("to", r.To)
	field("applied")
	dst = appendApplied(dst, r.Applied, in)
	dst = append(dst, ",\n"...)
	optStr("backup", r.Backup, false)
	optStr("error", r.Error, false)
	field("retryable")
	dst = strconv.AppendBool(dst, r.Retryable)
	dst = append(dst, ",\n"...)
	field("attempt")
	dst = strconv.AppendInt(dst, int64(r.Attempt), 10)
	dst = append(dst, ",\n"...)
	str("worker", r.Worker)
	field("duration_ms")
	dst = strconv.AppendInt(dst, r.DurationMs, 10)
	dst = append(dst, ",\n"...)
	field("at")
	dst = append(dst, '"')
	at, err := r.At.AppendText(dst)
	if err != nil {
		return dst[:start], false
	}
	dst = at
	dst = append(dst, "\",\n"...)
	optStr("adopted_from", r.AdoptedFrom, true)
	dst = append(dst, prefix...)
	dst = append(dst, '}')
	return dst, true
}

// appendApplied appends the applied list as MarshalIndent writes it at
// indentation in ("[]" when empty).
func appendApplied(dst []byte, list []engine.Applied, in string) []byte {
	if len(list) == 0 {
		return append(dst, "[]"...)
	}
	dst = append(dst, "[\n"...)
	for i, a := range list {
		dst = append(dst, in...)
		dst = append(dst, "  {\n"...)
		dst = append(dst, in...)
		dst = append(dst, `    "version": `...)
		dst = strconv.AppendInt(dst, a.Version, 10)
		dst = append(dst, ",\n"...)
		dst = append(dst, in...)
		dst = append(dst, `    "name": `...)
		dst = appendJSONString(dst, a.Name)
		dst = append(dst, ",\n"...)
		dst = append(dst, in...)
		dst = append(dst, `    "file": `...)
		dst = appendJSONString(dst, a.File)
		dst = append(dst, ",\n"...)
		dst = append(dst, in...)
		dst = append(dst, `    "duration_ms": `...)
		dst = strconv.AppendInt(dst, a.DurationMs, 10)
		dst = append(dst, '\n')
		dst = append(dst, in...)
		dst = append(dst, "  }"...)
		if i < len(list)-1 {
			dst = append(dst, ',')
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, in...)
	return append(dst, ']')
}

// appendJSONString appends s quoted as encoding/json quotes it: printable
// ASCII other than the characters it escapes is copied, anything else
// (control characters, '"', '\\', the HTML-escaped '<', '>', '&', any
// non-ASCII byte) goes through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// normalApplied is the applied list of a tenant's entry with one result:
// by version, each version once (what merging keeps), the list itself when
// it is already so.
func normalApplied(list []engine.Applied) []engine.Applied {
	for i := 1; i < len(list); i++ {
		if list[i].Version <= list[i-1].Version {
			m := newMerger(Result{Applied: list})
			return m.merged().Applied
		}
	}
	return list
}
