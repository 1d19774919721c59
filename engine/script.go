package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// runScript runs a .sh or .py migration as `sh FILE DB_PATH` or
// `python3 FILE DB_PATH` (fastmigrate's convention), capturing stdout and
// stderr. The script body is written to a temporary file so that embedded
// migrations run too. The child runs in its own process group and dies with
// its parent, so a killed migrator never leaves a script writing to a DB
// that the next run restores.
func runScript(ctx context.Context, m *Migration, dbPath string, timeout time.Duration) (string, error) {
	tmp, err := os.CreateTemp("", "shoal-step-*"+filepath.Ext(m.File))
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(m.Script); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, m.Interpreter, tmp.Name(), abs)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "SHOAL_DB="+abs, fmt.Sprintf("SHOAL_VERSION=%d", m.Version))
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error {
		// Kill the whole group: a shell's children must not outlive it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s and was killed: %w", timeout, err)
		} else {
			err = fmt.Errorf("cancelled: %w", err)
		}
	}
	return out.String(), err
}
