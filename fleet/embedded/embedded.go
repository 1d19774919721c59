// Package embedded runs an in-process nats-server with JetStream for
// `shoal run` and tests: no NATS to install.
package embedded

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure the embedded server.
type Options struct {
	// StoreDir holds JetStream's files. Empty: a temporary directory removed
	// by Shutdown.
	StoreDir string
	// Port to listen on 127.0.0.1; 0 picks a random free port. Ignored when
	// DontListen.
	Port int
	// DontListen serves in-process connections only (Conn/ConnectOption).
	DontListen bool
	// MaxStore bounds JetStream file storage (0: the server's default).
	MaxStore int64
}

// Server is a running embedded nats-server.
type Server struct {
	ns      *server.Server
	tempDir string
	opts    Options
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	s := &Server{opts: o}
	if o.StoreDir == "" {
		dir, err := os.MkdirTemp("", "shoal-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		s.tempDir = dir
		o.StoreDir = dir
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName:         "shoal-embedded",
		Host:               "127.0.0.1",
		Port:               port,
		DontListen:         o.DontListen,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		JetStreamMaxStore:  o.MaxStore,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         1 << 20,
		JetStreamMaxMemory: 64 << 20,
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		s.cleanup()
		return nil, fmt.Errorf("embedded NATS did not start within 15s")
	}
	s.ns = ns
	return s, nil
}

// ClientURL is the nats:// URL (empty when DontListen).
func (s *Server) ClientURL() string {
	if s.opts.DontListen {
		return ""
	}
	return s.ns.ClientURL()
}

// Port is the TCP port the server listens on (0 when DontListen).
func (s *Server) Port() int {
	if s.opts.DontListen {
		return 0
	}
	if addr, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return addr.Port
	}
	return 0
}

// ConnectOption makes nats.Connect use the in-process server.
func (s *Server) ConnectOption() nats.Option { return nats.InProcessServer(s.ns) }

// Conn opens a client connection (in-process when DontListen).
func (s *Server) Conn(opts ...nats.Option) (*nats.Conn, error) {
	if s.opts.DontListen {
		opts = append(opts, s.ConnectOption())
		return nats.Connect("", opts...)
	}
	return nats.Connect(s.ns.ClientURL(), opts...)
}

// StoreDir is JetStream's storage directory.
func (s *Server) StoreDir() string {
	if s.opts.StoreDir != "" {
		return s.opts.StoreDir
	}
	return s.tempDir
}

// NATS returns the underlying server.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server and removes a temporary store directory.
func (s *Server) Shutdown() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}
