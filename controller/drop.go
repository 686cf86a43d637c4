package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
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
	cl := dataclient.New(dataclient.Options{ConnsPerNode: 1, DialTimeout: c.cfg.DropTimeout})
	defer cl.Close()
	for _, n := range nodes {
		if n.State == wire.NodeDead {
			mu.Lock()
			res.Failed++
			errs = append(errs, n.Addr+wire.DropDeadSuffix)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			count, size, err := dropOne(ctx, cl, addr, job, admin, c.cfg.DropTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				errs = append(errs, err.Error()) // names the node
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

// dropOne asks the node at addr to drop the job's data, bounded by
// timeout, through the one data-plane client (dataclient.Client.DropJob),
// and returns the values removed and the bytes freed.
func dropOne(ctx context.Context, cl *dataclient.Client, addr, job string, admin []byte, timeout time.Duration) (uint64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cl.DropJob(ctx, addr, job, admin)
}
