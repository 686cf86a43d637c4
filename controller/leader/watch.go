package leader

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watch keeps c.leader current until ctx ends: it reads the first-created
// key under the prefix, then re-reads it on every change under the prefix.
// A failed read or watch is retried after a short pause.
func (c *Candidate) watch(ctx context.Context) {
	cli, pfx := c.cfg.Client, c.cfg.Prefix+"/"
	for ctx.Err() == nil {
		rev, err := c.refresh(ctx, cli, pfx)
		if err == nil {
			wch := cli.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
			for wr := range wch {
				if wr.Err() != nil {
					break
				}
				if _, err := c.refresh(ctx, cli, pfx); err != nil {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// refresh reads the leader's address into c.leader and returns the
// revision it was read at.
func (c *Candidate) refresh(ctx context.Context, cli *clientv3.Client, pfx string) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := cli.Get(rctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil {
		return 0, err
	}
	addr := ""
	if len(r.Kvs) > 0 {
		addr = string(r.Kvs[0].Value)
	}
	c.mu.Lock()
	c.leader = addr
	c.mu.Unlock()
	return r.Header.Revision, nil
}
