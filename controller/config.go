package controller

import (
	"errors"
	"log"
	"time"

	"github.com/pocketstore/pocket/internal/token"
)

// Config configures a Controller. Zero fields take the defaults below.
type Config struct {
	// Secret is the key shared with the nodes (token.SecretFrom). Required.
	Secret []byte

	// HeartbeatInterval is how often nodes are asked to report (1 s).
	HeartbeatInterval time.Duration
	// DeadAfter marks a silent node dead (3 heartbeat intervals).
	DeadAfter time.Duration
	// ForgetAfter drops a dead node that is in no job from the registry (1 min).
	ForgetAfter time.Duration

	// Policy is the sizing policy (DefaultPolicy).
	Policy Policy

	// FirstJobSeq is the N of the first job id; 0 picks a random start.
	FirstJobSeq uint64
	// DropTimeout bounds each node's drop-job exchange (10 s).
	DropTimeout time.Duration
	// MaxConns bounds concurrent control connections (1024).
	MaxConns int
	// Logf logs registry events (nil: log.Printf).
	Logf func(format string, args ...any)
}

// Policy holds the sizing constants (see the package doc).
type Policy struct {
	PerLambdaMbps  float64 // bandwidth per lambda (600)
	DefaultNodes   int     // nodes of a job given no hints (2)
	DefaultMbps    float64 // bandwidth of a job given no hints (16000)
	NodeMbps       float64 // bandwidth of a tier that reports none (8000)
	MinWeightShare float64 // floor of a node's weight, as a fraction of 1/n (0.1)
}

// DefaultPolicy returns Pocket's constants.
func DefaultPolicy() Policy {
	return Policy{PerLambdaMbps: 600, DefaultNodes: 2, DefaultMbps: 16000, NodeMbps: 8000, MinWeightShare: 0.1}
}

// ErrNoSecret means Config.Secret is empty or too short.
var ErrNoSecret = errors.New("controller: a shared secret of at least 16 bytes is required")

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if len(cfg.Secret) < token.MinSecretLen {
		return cfg, ErrNoSecret
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 3 * cfg.HeartbeatInterval
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = time.Minute
	}
	d := DefaultPolicy()
	p := &cfg.Policy
	if p.PerLambdaMbps <= 0 {
		p.PerLambdaMbps = d.PerLambdaMbps
	}
	if p.DefaultNodes <= 0 {
		p.DefaultNodes = d.DefaultNodes
	}
	if p.DefaultMbps <= 0 {
		p.DefaultMbps = d.DefaultMbps
	}
	if p.NodeMbps <= 0 {
		p.NodeMbps = d.NodeMbps
	}
	if p.MinWeightShare <= 0 || p.MinWeightShare > 1 {
		p.MinWeightShare = d.MinWeightShare
	}
	if cfg.DropTimeout <= 0 {
		cfg.DropTimeout = 10 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	return cfg, nil
}
