package leader

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DialTimeout bounds connecting to etcd and the first request Dial makes.
const DialTimeout = 5 * time.Second

// ParseEndpoints parses the --etcd flag: a comma-separated list of etcd
// client URLs (http://host:port, https://host:port) or host:port pairs.
// Spaces around entries are ignored; an empty list or entry, or one
// without a port, is an error naming it.
func ParseEndpoints(s string) ([]string, error) {
	var eps []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("leader: etcd endpoint list %q has an empty entry (want host:port or http://host:port, comma-separated)", s)
		}
		if err := checkEndpoint(f); err != nil {
			return nil, err
		}
		eps = append(eps, f)
	}
	return eps, nil
}

// checkEndpoint accepts host:port and http(s)://host:port.
func checkEndpoint(ep string) error {
	hostport := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("leader: etcd endpoint %q: want http://host:port or https://host:port", ep)
		}
		hostport = u.Host
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return fmt.Errorf("leader: etcd endpoint %q has no port (etcd's client port is usually 2379)", ep)
	}
	return nil
}

// Dial connects to etcd and checks that it answers within DialTimeout, so
// a wrong --etcd fails at start rather than at the first write. tlsConf,
// when set, is used for https endpoints (client certificate and CA).
func Dial(endpoints []string, tlsConf *tls.Config) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("leader: no etcd endpoints")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: DialTimeout, TLS: tlsConf})
	if err != nil {
		return nil, fmt.Errorf("leader: etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DialTimeout)
	defer cancel()
	// A read of one key checks the connection and a quorum (a
	// linearizable read goes through etcd's leader).
	if _, err := cli.Get(ctx, DefaultPrefix, clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("leader: etcd %s does not answer within %v: %w", strings.Join(endpoints, ","), DialTimeout, err)
	}
	return cli, nil
}
