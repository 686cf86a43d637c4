package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/perf/bench"
)

// The bench subcommand is a thin front end of perf/bench: flags, the load
// generator, the drivers and the report all live there.
func init() {
	register("bench", "load generator for a node or Redis (--target redis://HOST:PORT)", func(args []string) int {
		if len(args) > 0 {
			switch args[0] {
			case "workload":
				return runWorkload(args[1:])
			case "micro":
				return runMicro(args[1:])
			}
		}
		args, err := benchTokenArgs(args)
		if err != nil {
			return fail("bench: %v", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.Main(ctx, args, os.Stdout, os.Stderr)
	})
}

// benchTokenArgs takes --token-file FILE out of args and, when it or
// $POCKET_TOKEN gives a job token, hands the token to perf/bench as its
// --token flag. These arguments stay in this process's memory: no argv
// that other users can read ever holds the token.
func benchTokenArgs(args []string) ([]string, error) {
	rest := make([]string, 0, len(args)+2)
	file := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if flagName(a) != "token-file" {
			rest = append(rest, a)
			continue
		}
		if _, v, ok := strings.Cut(a, "="); ok {
			file = v
			continue
		}
		if i+1 == len(args) {
			return nil, errors.New("--token-file needs a FILE")
		}
		i++
		file = args[i]
	}
	if file == "" && os.Getenv(envToken) == "" {
		return rest, nil
	}
	t, err := jobToken(file)
	if err != nil {
		return nil, err
	}
	return append([]string{"--token", token.Format(t)}, rest...), nil
}
