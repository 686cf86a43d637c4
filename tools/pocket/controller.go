package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
)

// ctlDefaultAddr is where the controller listens, and where the job and
// status commands look for it, unless told otherwise.
const ctlDefaultAddr = "127.0.0.1:7000"

func init() {
	register("controller", "run the controller (node and job registries, placement)", runController)
}

func runController(args []string) int {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	listen := fs.String("listen", ctlDefaultAddr, "address to serve the control plane on")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret shared with the nodes, mode 0600; created with a fresh secret if missing\n(default $"+token.EnvSecret+"; else a fresh secret in a temporary file)")
	heartbeat := fs.Duration("heartbeat", time.Second, "heartbeat interval asked of the nodes")
	deadAfter := fs.Duration("dead-after", 0, "mark a silent node dead after this long (default 3 heartbeats)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		return fail("controller: unexpected argument %q", fs.Arg(0))
	}
	secret, err := loadOwnSecret(*secretFile)
	if err != nil {
		return fail("controller: %v", err)
	}
	defer secret.close()
	c, err := controller.New(controller.Config{Secret: secret.key, HeartbeatInterval: *heartbeat, DeadAfter: *deadAfter, Logf: log.Printf})
	if err != nil {
		return fail("controller: %v", err)
	}
	addr, err := c.Listen(*listen)
	if err != nil {
		c.Close()
		return fail("%v", err)
	}
	secretArg, note := secret.usage()
	fmt.Printf("pocket controller serving on %s\nexport %s=%s\nstart nodes with (%s):\n  pocket node --controller %s%s\n",
		addr, metaclient.EnvController, addr, note, addr, secretArg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *metrics != "" {
		srv := &http.Server{Addr: *metrics, Handler: metricsMux(c), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Printf("controller: metrics on %s: %v", *metrics, err)
			}
		}()
		defer srv.Close()
	}
	<-ctx.Done()
	c.Close()
	return 0
}

// ctlAddr returns the controller address from the flag, else
// $POCKET_CONTROLLER, else the default.
func ctlAddr(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(metaclient.EnvController); env != "" {
		return env
	}
	return ctlDefaultAddr
}

// ctlParse parses flags that may come before, between or after the
// positional arguments (Go's flag package stops at the first positional),
// and returns the positional ones.
func ctlParse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ctlClient returns a metaclient of the controller and a context for one
// command, cancelled by an interrupt or after a minute.
func ctlClient(addr string) (*metaclient.Client, context.Context, func()) {
	mc := metaclient.New(ctlAddr(addr), metaclient.Options{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	return mc, ctx, func() { cancel(); stop(); mc.Close() }
}
