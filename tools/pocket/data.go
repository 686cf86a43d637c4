package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/pocket"
)

func init() {
	register("put", "store a file (or - for stdin) under a key: put JOBID KEY FILE|-", runPut)
	register("get", "read a key into a file (default stdout): get JOBID KEY [FILE|-]", runGet)
	register("ls", "list a job's keys, one a line: ls JOBID [PREFIX]", runLs)
	register("rm", "delete a key (and, recursively, KEY/...): rm JOBID KEY", runRm)
}

// dataCmd parses the common flags of the data commands and opens the job.
type dataCmd struct {
	fs         *flag.FlagSet
	controller *string
	tok        *string
	persist    *bool
	once       *bool
	all        *bool
	tls        tlsFlags
}

func newDataCmd(name string) *dataCmd {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	d := &dataCmd{
		fs:         fs,
		controller: fs.String("controller", "", "controller address (default $POCKET_CONTROLLER, else "+ctlDefaultAddr+")"),
		tok:        fs.String("token-file", "", "file (mode 0600) holding the job's token (default $POCKET_TOKEN)"),
		persist:    fs.Bool("persist", false, "put: keep the value after the job is deregistered"),
		once:       fs.Bool("delete-after-read", false, "get: delete the value once read"),
		all:        fs.Bool("all", false, "rm: allow a name that is empty or only slashes, which deletes every key of the job"),
	}
	d.tls.bind(fs)
	return d
}

// open parses args, checks the count of positionals, and opens the job.
func (d *dataCmd) open(args []string, minPos, maxPos int) (*pocket.Job, []string, context.Context, func(), error) {
	pos, err := ctlParse(d.fs, args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(pos) < minPos || len(pos) > maxPos {
		return nil, nil, nil, nil, fmt.Errorf("%s: want %d to %d arguments, got %d", d.fs.Name(), minPos, maxPos, len(pos))
	}
	if credentialNames(pos[0]) {
		return d.openCredential(pos)
	}
	tok, err := jobToken(*d.tok)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tc, err := d.tls.config(pki.RoleClient)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s, err := pocket.Dial(ctx, ctlAddr(*d.controller), pocket.Config{TLS: tc})
	if err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	j, err := s.OpenJob(ctx, pos[0], tok)
	if err != nil {
		s.Close()
		stop()
		return nil, nil, nil, nil, err
	}
	return j, pos, ctx, func() { s.Close(); stop() }, nil
}

// credentialNames reports whether POCKET_CREDENTIAL is job's: then it is
// used, whatever token is also set (the job is deregistered, its token
// alone no longer finds its map).
func credentialNames(job string) bool {
	cred := os.Getenv("POCKET_CREDENTIAL")
	if cred == "" {
		return false
	}
	var s pocket.Store
	j, err := s.OpenCredential(cred)
	return err == nil && j.ID() == job
}

// openCredential opens a deregistered job's persisted values with
// POCKET_CREDENTIAL (printed by pocket job deregister); no controller is
// asked.
func (d *dataCmd) openCredential(pos []string) (*pocket.Job, []string, context.Context, func(), error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s := pocket.NewStore(nil, pocket.Config{})
	j, err := s.OpenCredential(os.Getenv("POCKET_CREDENTIAL"))
	if err == nil && j.ID() != pos[0] {
		err = fmt.Errorf("POCKET_CREDENTIAL is job %s's, not %s's", j.ID(), pos[0])
	}
	if err != nil {
		s.Close()
		stop()
		return nil, nil, nil, nil, err
	}
	return j, pos, ctx, func() { s.Close(); stop() }, nil
}

func runPut(args []string) int {
	d := newDataCmd("put")
	j, pos, ctx, done, err := d.open(args, 3, 3)
	if err != nil {
		return fail("%v", err)
	}
	defer done()
	var opts []pocket.PutOption
	if *d.persist {
		opts = append(opts, pocket.Persist())
	}
	if pos[2] == "-" {
		w, err := j.NewWriter(ctx, pos[1], opts...)
		if err == nil {
			if _, err = io.Copy(w, os.Stdin); err == nil {
				err = w.Close()
			} else {
				w.Abort() // nothing of a failed upload becomes visible
			}
		}
		if err != nil {
			return fail("put: %v", err)
		}
		return 0
	}
	if err := j.PutFile(ctx, pos[2], pos[1], opts...); err != nil {
		return fail("put: %v", err)
	}
	return 0
}

func runGet(args []string) int {
	d := newDataCmd("get")
	j, pos, ctx, done, err := d.open(args, 2, 3)
	if err != nil {
		return fail("%v", err)
	}
	defer done()
	var opts []pocket.GetOption
	if *d.once {
		opts = append(opts, pocket.DeleteAfterRead())
	}
	if len(pos) == 3 && pos[2] != "-" {
		if err := j.GetFile(ctx, pos[1], pos[2], opts...); err != nil {
			return fail("get: %v", err)
		}
		return 0
	}
	if _, err := j.GetTo(ctx, pos[1], os.Stdout, opts...); err != nil {
		return fail("get: %v", err)
	}
	return 0
}

func runLs(args []string) int {
	d := newDataCmd("ls")
	j, pos, ctx, done, err := d.open(args, 1, 2)
	if err != nil {
		return fail("%v", err)
	}
	defer done()
	prefix := ""
	if len(pos) == 2 {
		prefix = pos[1]
	}
	ents, err := j.List(ctx, prefix)
	if err != nil {
		return fail("ls: %v", err)
	}
	for _, e := range ents {
		fmt.Println(e.Name)
	}
	return 0
}

func runRm(args []string) int {
	d := newDataCmd("rm")
	j, pos, ctx, done, err := d.open(args, 2, 2)
	if err != nil {
		return fail("%v", err)
	}
	defer done()
	// Always recursive, as Pocket's delete: KEY, and everything under KEY/,
	// with or without a trailing slash. A name that is empty or only
	// slashes is the whole job: only with --all.
	if strings.TrimRight(pos[1], "/") == "" && !*d.all {
		return fail("rm: %q names the whole job: pass --all to delete every key of %s", pos[1], pos[0])
	}
	if err := j.RemoveAll(ctx, pos[1]); err != nil {
		return fail("rm: %v", err)
	}
	return 0
}
