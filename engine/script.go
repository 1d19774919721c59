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

// errScriptChanged: a script migration's file no longer has the checksum
// it had when the directory was loaded; it is not run.
var errScriptChanged = errors.New("the migration file changed since shoal loaded it")

// runScript runs a .sh or .py migration as `sh FILE DB_PATH` or
// `python3 FILE DB_PATH` (fastmigrate's convention), capturing stdout and
// stderr. FILE is the migration file itself (m.Path), run in place from its
// own directory (the working directory), after checking that its bytes
// still have the checksum that was loaded; only a migration with no file on
// disk (an embedded fs.FS) is written to a private temporary directory
// (mode 0700, the file 0600) and run from there. DB_PATH is dbPath (the
// step's private copy); the environment adds SHOAL_DB (the same),
// SHOAL_TENANT_DB (the live DB, for information: the script must not write
// it) and SHOAL_VERSION. The child runs in its own process group and dies
// with its parent.
func runScript(ctx context.Context, m *Migration, dbPath, tenantPath string, timeout time.Duration) (string, error) {
	file, workDir := m.Path, filepath.Dir(m.Path)
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", file, err)
		}
		if sum := Checksum(data); sum != m.Checksum {
			return "", fmt.Errorf("%w: %s has checksum %.12s, loaded %.12s; not run (run shoal again to load the new version)", errScriptChanged, file, sum, m.Checksum)
		}
	} else {
		tmpDir, err := os.MkdirTemp("", "shoal-step-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmpDir)
		file, workDir = filepath.Join(tmpDir, filepath.Base(m.File)), tmpDir
		if err := writeNew(file, m.Script, 0o600); err != nil {
			return "", err
		}
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
	cmd := exec.CommandContext(ctx, m.Interpreter, file, abs)
	cmd.Dir = workDir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "SHOAL_DB="+abs, "SHOAL_TENANT_DB="+tenantPath, fmt.Sprintf("SHOAL_VERSION=%d", m.Version))
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

// writeNew creates path (which must not exist; a symlink is not followed)
// with mode perm and writes data.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
