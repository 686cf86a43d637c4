package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/metaclient"
)

// listenTaken adds to err, the failure to listen on addr, the advice
// (which --listen to change) when another process listens there
// (EADDRINUSE). Other errors are returned as they are.
func listenTaken(err error, addr, advice string) error {
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%w; %s is taken: %s", err, addr, advice)
}

// ctlListenAdvice is listenTaken's advice for a controller (pocket up,
// pocket controller).
const ctlListenAdvice = "give the controller another address with --listen HOST:PORT (or stop the process that listens there)"

// addrFlag is the kind of network address a flag names.
type addrFlag int

const (
	// bindAddr is an address to listen on: HOST:PORT, HOST may be empty
	// (every interface) and PORT may be 0 (any free port).
	bindAddr addrFlag = iota
	// dialAddr is one address others dial: HOST:PORT with a host and a
	// port from 1 to 65535.
	dialAddr
	// dialList is a comma-separated list of dialAddr (the controllers of
	// a cluster on etcd), as metaclient.ParseControllers reads it.
	dialList
	// etcdList is a comma-separated list of etcd endpoints, each a
	// dialAddr with or without http:// or https:// before it, as
	// leader.ParseEndpoints reads it.
	etcdList
)

// addrFlags are the flags that name a network address, by flag name: a
// name means the same kind of address on every command that has it.
// newFlagSet has parseFlags check them (checkAddrFlags), so a value that
// is no HOST:PORT is a usage error naming the flag before anything starts,
// not a failure to listen or a dial retried for ever.
var addrFlags = map[string]addrFlag{
	"listen":         bindAddr,
	"metrics":        bindAddr,
	"advertise":      dialAddr,
	"controller":     dialList,
	"k8s-controller": dialList, // the nodes' --controller
	"etcd":           etcdList,
}

// checkAddrFlags checks the address flags of fs that were given, and, when
// fs has a --controller flag left unset, $POCKET_CONTROLLER, its default.
// A flag that keeps no value to read (flag.Func) is left to its command.
func checkAddrFlags(fs *flag.FlagSet) error {
	var err error
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if kind, ok := addrFlags[f.Name]; ok && err == nil && f.Value.String() != "" {
			err = kind.check("--"+f.Name, f.Value.String())
		}
	})
	if err != nil || fs.Lookup("controller") == nil || given["controller"] {
		return err
	}
	if env := os.Getenv(metaclient.EnvController); env != "" {
		return ctlEnvCheck(env)
	}
	return nil
}

// ctlEnvCheck checks env, the value of $POCKET_CONTROLLER.
func ctlEnvCheck(env string) error {
	if err := dialList.check("$"+metaclient.EnvController, env); err != nil {
		return fmt.Errorf("%w (the default of --controller: fix or unset it, or give --controller)", err)
	}
	return nil
}

// check refuses v, the value of the flag or variable name, when it is not
// an address of kind k. It looks no name up: a host name is taken as it is.
func (k addrFlag) check(name, v string) error {
	if k == bindAddr {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT: %w", name, v, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("%s %q: port %q: want a number from 0 to 65535", name, v, port)
		}
		return nil
	}
	want := "HOST:PORT"
	var err error
	switch k {
	case dialList:
		want = "HOST:PORT, or a comma-separated list of them"
	case etcdList:
		want = "HOST:PORT or http(s)://HOST:PORT, or a comma-separated list of them"
		err = checkEtcdList(v)
	}
	if k != etcdList {
		_, err = metaclient.ParseControllers(v)
	}
	if inner := errors.Unwrap(err); inner != nil {
		err = inner // the entry's error, without the list's prefix
	}
	if err == nil && k == dialAddr && strings.Contains(v, ",") {
		err = errors.New("one address only")
	}
	if err != nil {
		return fmt.Errorf("%s %q: want %s: %w", name, v, want, err)
	}
	return nil
}

// checkEtcdList refuses a list of etcd endpoints that leader.ParseEndpoints
// refuses, or that holds one whose HOST:PORT has no host or a port out of
// 1-65535 (ParseEndpoints wants a port only: the etcd client would retry
// such an endpoint for ever).
func checkEtcdList(v string) error {
	eps, err := leader.ParseEndpoints(v)
	for _, ep := range eps {
		if err != nil {
			break
		}
		hostport := ep
		if u, perr := url.Parse(ep); perr == nil && strings.Contains(ep, "://") {
			hostport = u.Host
		}
		_, err = metaclient.ParseControllers(hostport)
	}
	return err
}
