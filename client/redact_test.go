package client_test

import (
	"context"
	"net"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/redact/redacttest"
)

// TestPrintingHidesTheToken: ConnOptions and a Conn print the job's token
// redacted for every fmt verb and in log/slog (they printed its bytes).
func TestPrintingHidesTheToken(t *testing.T) {
	tok := []byte("tok-SECRET-0123456789abcdef")
	opt := client.ConnOptions{Job: []byte("sort-3"), Token: tok, Epoch: 4}
	redacttest.Check(t, "ConnOptions", opt, tok)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := client.DialConn(context.Background(), ln.Addr().String(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	redacttest.CheckFmt(t, "*Conn", c, tok)
}
