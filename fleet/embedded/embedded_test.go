package embedded

import (
	"os"
	"testing"
)

func TestStartInProcessAndCleanup(t *testing.T) {
	s, err := Start(Options{DontListen: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.StoreDir()
	if s.ClientURL() != "" || s.Port() != 0 {
		t.Fatal("DontListen opens no port")
	}
	nc, err := s.Conn()
	if err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() || nc.ConnectedServerVersion() == "" {
		t.Fatal("not connected")
	}
	nc.Close()
	s.Shutdown()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary store %s not removed: %v", dir, err)
	}
}

func TestStartListening(t *testing.T) {
	s, err := Start(Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.Port() == 0 || s.ClientURL() == "" {
		t.Fatal("no port")
	}
	nc, err := s.Conn()
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
