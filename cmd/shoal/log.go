package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the zap logger from --log-format and --log-level: JSON on
// stderr by default, console for people.
func newLogger(c *cli.Context) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.String("log-level"))
	if err != nil {
		return nil, usageError("invalid --log-level %q: use debug, info, warn or error", c.String("log-level"))
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch f := c.String("log-format"); f {
	case "json", "":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, usageError("invalid --log-format %q: use json or console", f)
	}
	var w io.Writer = c.App.ErrWriter
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	return zap.New(core), nil
}

// printf writes human output on stdout.
func printf(c *cli.Context, format string, args ...any) {
	fmt.Fprintf(c.App.Writer, format, args...)
}

// printJSON writes v as one indented JSON object on stdout (--json).
func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
