package main

import (
	"errors"
	"fmt"
	"syscall"
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
