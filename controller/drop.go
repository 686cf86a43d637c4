package controller

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// dropAll asks every node of the map that is not dead to drop the job's
// data, in parallel, and sums the replies.
func (c *Controller) dropAll(ctx context.Context, job string, nodes []wire.MapNode) *wire.DropResult {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		res  wire.DropResult
		errs []string
	)
	admin := token.SignAdmin(c.cfg.Secret, []byte(job))
	for _, n := range nodes {
		if n.State == wire.NodeDead {
			mu.Lock()
			res.Failed++
			errs = append(errs, n.Addr+": node dead")
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			count, size, err := dropOne(ctx, addr, job, admin, c.cfg.DropTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
				return
			}
			res.Nodes++
			res.Values += count
			res.Bytes += size
		}(n.Addr)
	}
	wg.Wait()
	res.Message = strings.Join(errs, "; ")
	return &res
}

// dropID is the request id of drop-job frames; one request per connection.
const dropID = 1

// dropOne sends one data-plane OpDropJob request (header + wire.Request
// with the job and the admin token) to the node at addr and returns the
// reply's Count (values removed) and Size (bytes freed).
func dropOne(ctx context.Context, addr, job string, admin []byte, timeout time.Duration) (uint64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, fmt.Errorf("drop job: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return 0, 0, fmt.Errorf("drop job: %w", err)
		}
	}
	meta := wire.NewEncoder().Request(&wire.Request{Job: []byte(job), Token: admin})
	if _, err := conn.Write(wire.AppendControlFrame(nil, wire.OpDropJob, dropID, wire.CodeOK, meta)); err != nil {
		return 0, 0, fmt.Errorf("drop job: send: %w", err)
	}
	lim := wire.DefaultLimits()
	h, rmeta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("drop job: reply: %w", err)
	}
	if h.Op != wire.OpDropJob.Reply() || h.ID != dropID {
		return 0, 0, wire.Errorf(wire.CodeMalformed, "drop job: reply %s id %d to %s id %d", h.Op, h.ID, wire.OpDropJob, dropID)
	}
	if err := wire.ReplyError(&h, rmeta); err != nil {
		return 0, 0, fmt.Errorf("drop job: %w", err)
	}
	var r wire.Response
	if err := wire.DecodeResponse(rmeta, &r); err != nil {
		return 0, 0, fmt.Errorf("drop job: %w", err)
	}
	return r.Count, r.Size, nil
}
